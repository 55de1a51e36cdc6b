"""Key frames: the sampled frames that best match the item's title, kept in time order (VRAgent-R1: top 5 by CLIP
frame-title similarity).

A scorer is any object with ``score(frames, text) -> (len(frames),) similarities`` (:class:`FrameScorer`); the real
one embeds frames and text with open_clip (:mod:`simulators.perception.clip`).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

__all__ = ["FrameScorer", "key_frames"]


@runtime_checkable
class FrameScorer(Protocol):
    name: str

    def score(self, frames: np.ndarray, text: str) -> np.ndarray:
        """Similarity of each frame ``(n, H, W, 3)`` uint8 to ``text``, higher is closer."""


def key_frames(frames: np.ndarray, text: str, scorer: FrameScorer, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """(positions of the ``k`` frames most similar to ``text``, in time order; every frame's score)."""
    scores = np.asarray(scorer.score(frames, text), dtype=np.float64)
    if scores.shape != (len(frames),) or not np.isfinite(scores).all():
        raise ValueError(f"{getattr(scorer, 'name', type(scorer).__name__)} gave scores of shape {scores.shape} "
                         f"(finite: {bool(np.isfinite(scores).all())}) for {len(frames)} frames; expected one finite score per frame.")
    top = np.argsort(-scores, kind="stable")[: min(k, len(frames))]
    return np.sort(top), scores
