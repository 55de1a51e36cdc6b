"""The user-simulator protocol: one batched call from the environment, one answer per user.

The environment builds one :class:`SimulationRequest` per (sub-)environment and calls
``simulator.respond(requests, rngs)`` once per (vector) step. ``rngs`` holds one
``numpy.random.Generator`` per request; a simulator draws the randomness of request ``i`` only from
``rngs[i]``, and always the same number of draws for the same kind of request, so that a batch of N
requests gives exactly what N single calls would give (same seed, same trajectory).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol, Sequence, runtime_checkable

import numpy as np

__all__ = ["FeedbackMode", "config_from_dict", "SimulationRequest", "SimulationResponse", "UserSimulator", "choice_distributions", "stack_memory"]

FeedbackMode = Literal["page", "feed"]


def config_from_dict(cls, values: dict):
    """A config dataclass from a dict (e.g. ``simulator_kwargs`` or JSON): unknown keys are rejected by name, lists
    become tuples (JSON has no tuples)."""
    from dataclasses import fields

    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"Unknown {cls.__name__} keys {unknown}; known keys: {sorted(known)}.")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


@dataclass
class SimulationRequest:
    """What a simulator sees of one user at one step.

    user: user index in the dataset.
    history_items: (H,) item indices of the user's memory, oldest first (real history, then items
        consumed in this episode).
    history_watch_ratio: (H,) watch ratio of each memory item (real or proxy; NaN if unknown).
    history_skipped: (H,) whether that item was fast-skipped.
    slate: (K,) item indices shown, in position order.
    repeated: (K,) True where the item was already consumed or appears earlier in the same slate.
    mode: 'page' (click at most one item, or none) or 'feed' (each item skipped or watched).
    step: step index within the episode (0 on the first step).
    history_time: (H,) timestamps of memory items (seconds), NaN for items consumed in this
        episode; ``None`` when unknown. "Now" is the latest real timestamp.
    history_count: how many items the user's memory has ever held (real history before the episode's cut plus the
        items appended in it): the absolute position of the last memory item + 1; ``None`` when unknown.
    """

    user: int
    history_items: np.ndarray
    history_watch_ratio: np.ndarray
    history_skipped: np.ndarray
    slate: np.ndarray
    repeated: np.ndarray
    mode: FeedbackMode
    step: int = 0
    history_time: np.ndarray | None = None
    history_count: int | None = None

    @classmethod
    def from_history(
        cls, dataset, user: int, end: int, slate: np.ndarray, mode: FeedbackMode = "page", memory: int = 30,
    ) -> "SimulationRequest":
        """A request whose memory is ``user``'s real history before its ``end``-th interaction (last ``memory``).

        Used to replay held-out situations (fidelity, benchmarks); nothing in the slate is marked repeated.
        """
        h = dataset.history(user)
        idx = np.arange(h.start, h.start + end)[-memory:]
        ratio = dataset.inter_watch_ratio[idx]
        slate = np.asarray(slate)
        return cls(
            user=int(user), history_items=dataset.inter_item[idx], history_watch_ratio=ratio,
            history_skipped=ratio < dataset.thresholds.skip_below, slate=slate, repeated=np.zeros(len(slate), bool),
            mode=mode, history_time=dataset.inter_time[idx], history_count=int(end),
        )


def stack_memory(requests: Sequence[SimulationRequest], width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The last ``width`` memory items of each request, right-aligned: (items (-1 pads), watch ratios (NaN pads),
    skipped (False pads)), each (N, width)."""
    n = len(requests)
    hist = np.full((n, width), -1, dtype=np.int64)
    ratio = np.full((n, width), np.nan)
    skipped = np.zeros((n, width), dtype=bool)
    for i, r in enumerate(requests):
        m = min(len(r.history_items), width)
        if m:
            hist[i, width - m :] = r.history_items[-m:]
            ratio[i, width - m :] = r.history_watch_ratio[-m:]
            skipped[i, width - m :] = r.history_skipped[-m:]
    return hist, ratio, skipped


@dataclass
class SimulationResponse:
    """A simulated user's answer to one slate; arrays have one entry per slate position.

    played: the item was played (page mode: the clicked item; feed mode: every item).
    clicked: page mode: the chosen item (at most one True); feed mode: equal to ``played & ~skipped``.
    skipped: fast skip (watch ratio below the skip threshold); meaningful where ``played``.
    watch_ratio: fraction watched where played, NaN elsewhere.
    rating: rating on the dataset's scale where the simulator gives one, NaN elsewhere.
    reason_class / reason_text: per-item reasons, None where the simulator gives none.
    leave: the user chooses to end the session after this step.
    choice_probs: page mode: (K + 1,) distribution over the items and, last, 'none'.
    skip_probs: feed mode: (K,) probability of a fast skip per item.
    errors: number of unusable model outputs behind this answer (0 for exact simulators).
    """

    played: np.ndarray
    clicked: np.ndarray
    skipped: np.ndarray
    watch_ratio: np.ndarray
    rating: np.ndarray
    reason_class: list[str | None] | None = None
    reason_text: list[str | None] | None = None
    leave: bool = False
    choice_probs: np.ndarray | None = None
    skip_probs: np.ndarray | None = None
    errors: int = 0
    extra: dict = field(default_factory=dict)


@runtime_checkable
class UserSimulator(Protocol):
    """Anything that answers a batch of requests; see the module docstring for the rng contract."""

    def respond(
        self, requests: Sequence[SimulationRequest], rngs: Sequence[np.random.Generator]
    ) -> list[SimulationResponse]:
        ...


def choice_distributions(simulator: UserSimulator, requests: Sequence[SimulationRequest], batch_size: int = 256) -> list[np.ndarray]:
    """Each page request's distribution over its slate items ('none' removed, renormalised), for scoring
    a simulator against known choices; rngs are fixed, so a deterministic simulator answers the same."""
    out = []
    for start in range(0, len(requests), batch_size):
        chunk = list(requests[start : start + batch_size])
        for req, resp in zip(chunk, simulator.respond(chunk, [np.random.default_rng(0) for _ in chunk])):
            if resp.choice_probs is None:
                raise ValueError(f"{simulator!r} gave no choice_probs in page mode; it cannot be scored on choices.")
            p = np.asarray(resp.choice_probs[: len(req.slate)], dtype=np.float64)
            out.append(p / p.sum())
    return out
