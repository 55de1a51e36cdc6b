"""Reward terms of one step and their weights.

Each term is a count or a sum over the shown slate; the step reward is ``sum(weight * term)`` and
``info["reward_terms"]`` reports every term's raw value so that any other weighting can be
recomputed offline.

click: items clicked (page mode) or watched past the skip threshold (feed mode).
watch_ratio: sum of the watch ratios of played items (NaN-free; unknown ratios count 0).
skip: played items that were fast-skipped.
repeat: shown items that were already consumed, or repeat an earlier slot of the same slate.
like: played items whose watch ratio reaches the like threshold (MovieLens proxy: rating >= 4).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np

from recsim_env.kernels import reward_terms_kernel
from recsim_env.validation import check_real

__all__ = ["REWARD_TERMS", "RewardWeights", "reward_terms"]

REWARD_TERMS = ("click", "watch_ratio", "skip", "repeat", "like")


@dataclass(frozen=True)
class RewardWeights:
    """Weight of each reward term (see the module docstring for the terms)."""

    click: float = 1.0
    watch_ratio: float = 1.0
    skip: float = -0.2
    repeat: float = -1.0
    like: float = 0.0

    def __post_init__(self) -> None:
        for f in fields(self):
            object.__setattr__(self, f.name, check_real(f"reward_weights[{f.name!r}]", getattr(self, f.name)))

    def as_array(self) -> np.ndarray:
        return np.array([getattr(self, f.name) for f in fields(self)], dtype=np.float64)

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def reward_terms(
    played: np.ndarray, clicked: np.ndarray, skipped: np.ndarray, watch_ratio: np.ndarray,
    repeated: np.ndarray, like_at: float,
) -> np.ndarray:
    """(N, len(REWARD_TERMS)) term values for a batch of (N, K) feedback arrays: clicks, watch ratio of played items
    (NaN counts 0), fast skips and likes (watch ratio >= ``like_at``, not skipped) among played items, repeats."""
    return reward_terms_kernel(*(np.ascontiguousarray(a, bool) for a in (played, clicked, skipped)),
                               np.ascontiguousarray(watch_ratio, np.float64), np.ascontiguousarray(repeated, bool), float(like_at))
