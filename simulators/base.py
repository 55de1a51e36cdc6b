"""The user-simulator protocol: one batched call from the environment, one answer per user.

The environment builds one :class:`SimulationRequest` per (sub-)environment and calls
``simulator.respond(requests, rngs)`` once per (vector) step. ``rngs`` holds one
``numpy.random.Generator`` per request; a simulator draws the randomness of request ``i`` only from
``rngs[i]``, and always the same number of draws for the same kind of request, so that a batch of N
requests gives exactly what N single calls would give (same seed, same trajectory).

A simulator may also offer ``respond_batch(batch, rngs)``: the same answers for a :class:`RequestBatch` (the
requests stacked into arrays, one mode and slate size) as one :class:`ResponseBatch`. The environment uses it where
it exists (no per-user Python objects on the hot path) and falls back to ``respond`` otherwise (:func:`respond_batch`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol, Sequence, runtime_checkable

import numpy as np

__all__ = [
    "FeedbackMode", "RequestBatch", "ResponseBatch", "SimulationRequest", "SimulationResponse", "UserSimulator",
    "choice_distributions", "config_from_dict", "respond_batch", "stack_memory",
]

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
        idx = np.arange(h.start, h.start + end)[max(end - memory, 0) :]  # memory 0: empty (not [-0:], all)
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


@dataclass
class RequestBatch:
    """N requests of one ``mode`` and slate size stacked into arrays (the fields of :class:`SimulationRequest`, one row
    per user): user, step, history_count (N,); history_items / history_watch_ratio / history_skipped / history_time
    (N, H), right-aligned with -1 / NaN / False / NaN padding; slate, repeated (N, K). ``history_count`` holds -1 and
    ``history_time`` NaN where unknown."""

    user: np.ndarray
    history_items: np.ndarray
    history_watch_ratio: np.ndarray
    history_skipped: np.ndarray
    slate: np.ndarray
    repeated: np.ndarray
    mode: FeedbackMode
    step: np.ndarray
    history_time: np.ndarray
    history_count: np.ndarray

    def __len__(self) -> int:
        return len(self.user)

    @classmethod
    def from_requests(cls, requests: Sequence[SimulationRequest], width: int | None = None) -> "RequestBatch":
        """Stack ``requests`` (one mode, one slate size); memories are cut or padded to ``width`` (default: the longest)."""
        modes = {r.mode for r in requests}
        sizes = {len(r.slate) for r in requests}
        if len(modes) > 1 or len(sizes) > 1:
            raise ValueError(f"A RequestBatch holds one mode and one slate size, got modes {sorted(modes)} and sizes {sorted(sizes)}.")
        width = max((len(r.history_items) for r in requests), default=0) if width is None else width
        hist, ratio, skipped = stack_memory(requests, width)
        when = np.full((len(requests), width), np.nan)
        for i, r in enumerate(requests):
            m = min(len(r.history_items), width)
            if r.history_time is not None and m:
                when[i, width - m :] = r.history_time[-m:]
        return cls(
            user=np.array([r.user for r in requests], np.int64), history_items=hist, history_watch_ratio=ratio,
            history_skipped=skipped, slate=np.stack([np.asarray(r.slate, np.int64) for r in requests]),
            repeated=np.stack([np.asarray(r.repeated, bool) for r in requests]), mode=modes.pop(),
            step=np.array([r.step for r in requests], np.int64), history_time=when,
            history_count=np.array([-1 if r.history_count is None else r.history_count for r in requests], np.int64),
        )

    def requests(self) -> list[SimulationRequest]:
        """One :class:`SimulationRequest` per row (views of the rows; padding kept, as the environment sends it)."""
        return [
            SimulationRequest(
                user=int(self.user[i]), history_items=self.history_items[i], history_watch_ratio=self.history_watch_ratio[i],
                history_skipped=self.history_skipped[i], slate=self.slate[i], repeated=self.repeated[i], mode=self.mode,
                step=int(self.step[i]), history_time=self.history_time[i],
                history_count=None if self.history_count[i] < 0 else int(self.history_count[i]),
            )
            for i in range(len(self))
        ]


@dataclass
class ResponseBatch:
    """N answers as arrays (the fields of :class:`SimulationResponse`, one row per user): played, clicked, skipped,
    watch_ratio, rating (N, K); leave, errors (N,); choice_probs (N, K + 1) in page mode and skip_probs (N, K) in feed
    mode, or None where the simulator gives none; reason_class / reason_text (N, K) object arrays or None. The arrays
    pass to the environment, which may edit them: a simulator returns fresh ones, not buffers it keeps."""

    played: np.ndarray
    clicked: np.ndarray
    skipped: np.ndarray
    watch_ratio: np.ndarray
    rating: np.ndarray
    leave: np.ndarray
    errors: np.ndarray
    choice_probs: np.ndarray | None = None
    skip_probs: np.ndarray | None = None
    reason_class: np.ndarray | None = None
    reason_text: np.ndarray | None = None

    @classmethod
    def from_responses(cls, responses: Sequence[SimulationResponse], n_slots: int) -> "ResponseBatch":
        """Stack per-user answers; a distribution or reason list missing in some rows is NaN / None there."""

        def stacked(name: str, dtype) -> np.ndarray:
            return np.stack([np.asarray(getattr(r, name)) for r in responses]).astype(dtype).reshape(len(responses), n_slots)

        def optional(name: str, width: int) -> np.ndarray | None:
            values = [getattr(r, name) for r in responses]
            if all(v is None for v in values):
                return None
            return np.stack([np.full(width, np.nan) if v is None else np.asarray(v, np.float64) for v in values])

        def reasons(name: str) -> np.ndarray | None:
            values = [getattr(r, name) for r in responses]
            if all(v is None for v in values):
                return None
            out = np.full((len(responses), n_slots), None, dtype=object)
            for i, v in enumerate(values):
                if v is not None:
                    out[i] = list(v)
            return out

        return cls(
            played=stacked("played", bool), clicked=stacked("clicked", bool), skipped=stacked("skipped", bool),
            watch_ratio=stacked("watch_ratio", np.float64), rating=stacked("rating", np.float64),
            leave=np.array([bool(r.leave) for r in responses]), errors=np.array([int(r.errors) for r in responses], np.int64),
            choice_probs=optional("choice_probs", n_slots + 1), skip_probs=optional("skip_probs", n_slots),
            reason_class=reasons("reason_class"), reason_text=reasons("reason_text"),
        )

    def responses(self) -> list[SimulationResponse]:
        """One :class:`SimulationResponse` per row."""
        rows = range(len(self.leave))
        return [
            SimulationResponse(
                played=self.played[i], clicked=self.clicked[i], skipped=self.skipped[i], watch_ratio=self.watch_ratio[i],
                rating=self.rating[i], leave=bool(self.leave[i]), errors=int(self.errors[i]),
                reason_class=None if self.reason_class is None else list(self.reason_class[i]),
                reason_text=None if self.reason_text is None else list(self.reason_text[i]),
                choice_probs=None if self.choice_probs is None else self.choice_probs[i],
                skip_probs=None if self.skip_probs is None else self.skip_probs[i],
            )
            for i in rows
        ]


def respond_batch(simulator: "UserSimulator", batch: RequestBatch, rngs: Sequence[np.random.Generator]) -> ResponseBatch:
    """``simulator``'s answers to ``batch``: its own ``respond_batch`` where it has one, else ``respond`` on the rows."""
    own = getattr(simulator, "respond_batch", None)
    if callable(own):
        out = own(batch, rngs)
    else:
        responses = simulator.respond(batch.requests(), rngs)
        if len(responses) != len(batch):
            raise RuntimeError(f"Simulator returned {len(responses)} responses for {len(batch)} requests.")
        out = ResponseBatch.from_responses(responses, batch.slate.shape[1])
    if out.played.shape != batch.slate.shape:
        raise RuntimeError(f"Simulator answered with shape {out.played.shape} for slates of shape {batch.slate.shape}.")
    return out


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
