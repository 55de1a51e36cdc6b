"""Sessions in the logs: how long real users stay in one sitting, and what their leaving depends on.

A session is a run of one user's consecutive interactions (time order) whose gaps are all below ``gap_seconds``; the
threshold is a choice, stated wherever a number from it is (MovieLens users rate in bursts: most gaps are seconds or
days, so results change little between 30 minutes and a few hours; `benchmarks/sessions.py` reports several).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from recsim_env.data import Dataset, cache_dir
from recsim_env.kernels import leave_hazards

__all__ = ["FEATURES", "MIN_HAZARD", "LeaveModel", "fitted_leave_model", "ks_distance", "leave_hazard", "session_lengths", "sessions"]


def sessions(dataset: Dataset, gap_seconds: float, users: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(session id of every interaction of ``users`` (all by default), in the dataset's per-user time order; the
    interaction indices). A new session starts at each user's first interaction and after every gap >= ``gap_seconds``."""
    if not gap_seconds > 0:
        raise ValueError(f"gap_seconds must be > 0, got {gap_seconds}.")
    users = np.arange(dataset.n_users) if users is None else np.asarray(users)
    idx = np.concatenate([np.arange(dataset.user_ptr[u], dataset.user_ptr[u + 1]) for u in users]) if len(users) else np.zeros(0, np.int64)
    t = dataset.inter_time[idx]
    if np.isnan(t).any():
        raise ValueError(f"{dataset.name} has interactions without a timestamp: sessions need times.")
    first = np.ones(len(idx), bool)
    same_user = dataset.inter_user[idx][1:] == dataset.inter_user[idx][:-1]
    first[1:] = ~same_user | (np.diff(t) >= gap_seconds)
    return np.cumsum(first) - 1, idx


def session_lengths(dataset: Dataset, gap_seconds: float, users: np.ndarray | None = None) -> np.ndarray:
    """Number of interactions in each session."""
    sid, _ = sessions(dataset, gap_seconds, users)
    return np.bincount(sid) if len(sid) else np.zeros(0, np.int64)


def leave_hazard(dataset: Dataset, gap_seconds: float, users: np.ndarray | None = None) -> dict[str, dict[str, float]]:
    """P(the session ends right after an interaction), by what the user thought of that item (rating <= 2: disliked,
    3, >= 4: liked; datasets without ratings: by fast skip) and by its position in the session (1, 2-5, 6-20, > 20)."""
    sid, idx = sessions(dataset, gap_seconds, users)
    last = np.ones(len(sid), bool)
    last[:-1] = sid[1:] != sid[:-1]
    pos = _positions(sid)
    groups: dict[str, np.ndarray] = {}
    if dataset.has_ratings:
        r = dataset.inter_rating[idx]
        groups |= {"disliked (rating <= 2)": r <= 2, "rating 3": r == 3, "liked (rating >= 4)": r >= 4}
    else:
        skip = dataset.inter_watch_ratio[idx] < dataset.thresholds.skip_below
        groups |= {"fast-skipped": skip, "watched": ~skip}
    groups |= {"position 1": pos == 0, "positions 2-5": (pos >= 1) & (pos < 5), "positions 6-20": (pos >= 5) & (pos < 20),
               "positions > 20": pos >= 20}
    return {name: {"hazard": float(last[m].mean()) if m.any() else float("nan"), "n": int(m.sum())} for name, m in groups.items()}


MIN_HAZARD = 1e-3  # every interaction ends the session with at least this probability: a user always tires


def _features(position: np.ndarray, disliked: np.ndarray, liked: np.ndarray, tenure: np.ndarray) -> np.ndarray:
    """Leaving-model inputs after an interaction: 1, log(1 + position in session), disliked, liked,
    log(1 + the user's interactions before this one), first of its session."""
    position = np.asarray(position)
    return np.stack([np.ones(len(position)), np.log1p(position), disliked, liked, np.log1p(tenure), position == 0],
                    1).astype(np.float64)


FEATURES = ("1", "log(1+pos)", "disliked", "liked", "log(1+tenure)", "first")


def _judged(dataset: Dataset, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(disliked, liked) of logged interactions, read from watch ratios with the dataset's thresholds (MovieLens:
    rating <= 2 is a fast skip, rating >= 4 a like)."""
    ratio = dataset.inter_watch_ratio[idx]
    return ratio < dataset.thresholds.skip_below, ratio >= dataset.thresholds.like_at


class LeaveModel:
    """P(a session ends right after an interaction) = max(MIN_HAZARD, sigmoid(w . x)) with x = ``FEATURES``:
    position in the session, whether the item was disliked (fast-skipped) or liked, the user's tenure (how many
    interactions it had before) and a first-item flag. Fitted by maximum likelihood on the sessions of the given users;
    ``constant=True`` keeps the intercept alone (a geometric session length), the baseline.

    The features were chosen on validation users' sessions (``benchmarks/sessions.py`` reports test users):
    position alone replays sessions much too short, because early in a user's log (sign-up bursts) sessions are long.
    ``MIN_HAZARD`` bounds every session: P(still there after n interactions) <= (1 - MIN_HAZARD) ** n."""

    def __init__(self, weights: np.ndarray, gap_seconds: float) -> None:
        self.weights = np.asarray(weights, dtype=np.float64)
        if self.weights.shape != (len(FEATURES),):
            raise ValueError(f"LeaveModel needs {len(FEATURES)} weights {FEATURES}, got shape {self.weights.shape}.")
        self.gap_seconds = gap_seconds

    @classmethod
    def fit(cls, dataset: Dataset, gap_seconds: float, users: np.ndarray, constant: bool = False) -> "LeaveModel":
        from scipy.optimize import minimize
        from scipy.special import expit

        sid, idx = sessions(dataset, gap_seconds, users)
        if len(sid) == 0:
            raise ValueError(f"LeaveModel.fit got no interactions of {dataset.name} for the given users.")
        last = np.ones(len(sid), bool)
        last[:-1] = sid[1:] != sid[:-1]
        x = _features(_positions(sid), *_judged(dataset, idx), _tenure(dataset, idx))
        if constant:
            x = x[:, :1]

        def loss(w):
            z = x @ w
            nll = np.logaddexp(0, z) - last * z
            grad = x.T @ (expit(z) - last)
            return nll.sum(), grad

        w = minimize(loss, np.zeros(x.shape[1]), jac=True, method="L-BFGS-B").x
        return cls(np.pad(w, (0, len(FEATURES) - len(w))), gap_seconds)

    def hazard(self, position: np.ndarray, disliked: np.ndarray, liked: np.ndarray, tenure: np.ndarray) -> np.ndarray:
        """P(leaving right after each interaction), all arguments broadcast to one shape (rows x items works)."""
        arrays = np.broadcast_arrays(position, disliked, liked, tenure)
        flat = [np.ascontiguousarray(a, np.float64).ravel() for a in arrays]
        return leave_hazards(self.weights, *flat, MIN_HAZARD).reshape(arrays[0].shape)

    def replay(self, dataset: Dataset, users: np.ndarray, rng: np.random.Generator, repeats: int = 1) -> np.ndarray:
        """Simulated session lengths under log replay: from each real session start of ``users``, the user meets
        its own next logged items in order and leaves after each with the model's probability (a session still going
        when the user's log ends is cut there); ``repeats`` replays per start, in start order."""
        sid, idx = sessions(dataset, self.gap_seconds, users)
        starts = np.concatenate([[0], np.flatnonzero(np.diff(sid)) + 1])
        who = dataset.inter_user[idx]
        bounds = np.append(np.flatnonzero(who[1:] != who[:-1]) + 1, len(who))  # each user's block ends here
        user_end = bounds[np.searchsorted(bounds, np.arange(len(who)), side="right")]
        disliked, liked = _judged(dataset, idx)
        tenure = _tenure(dataset, idx)
        out = np.empty((len(starts), repeats), np.int64)
        for n, s in enumerate(starts):
            e = user_end[s]
            h = self.hazard(np.arange(e - s), disliked[s:e], liked[s:e], tenure[s:e])
            for k in range(repeats):
                leave = rng.random(len(h)) < h
                out[n, k] = (np.argmax(leave) + 1) if leave.any() else len(h)
        return out.ravel()


def _tenure(dataset: Dataset, idx: np.ndarray) -> np.ndarray:
    """How many interactions the user had before each of ``idx`` (its index in the user's time-ordered log)."""
    return idx - dataset.user_ptr[dataset.inter_user[idx]]


_FITTED: dict = {}


def fitted_leave_model(dataset: Dataset, gap_seconds: float = 3600.0) -> LeaveModel:
    """The leaving model of ``RecSimEnv-v1``: fitted on the dataset's train users' sessions (gap < ``gap_seconds``),
    cached per dataset content in this process and on disk (``$RECSIM_CACHE/sessions``, keyed by the dataset's
    content, the gap and this module's code, so an edit never reads a stale fit)."""
    key = (dataset.fingerprint(), gap_seconds)
    if key not in _FITTED:
        if np.isnan(dataset.inter_time).any():
            raise ValueError(f"session_end='fitted' needs timestamps to cut sessions; {dataset.name} has interactions "
                             f"without one. Use session_end='patience' or pass a LeaveModel.")
        digest = hashlib.sha256(f"{key}".encode() + Path(__file__).read_bytes()).hexdigest()[:24]
        path = cache_dir() / "sessions" / f"{dataset.name}-{digest}.json"
        try:
            _FITTED[key] = LeaveModel(np.array(json.loads(path.read_text())["weights"]), gap_seconds)
        except (OSError, ValueError, KeyError):  # absent or unreadable: fit, then try to keep it
            _FITTED[key] = LeaveModel.fit(dataset, gap_seconds, dataset.users("train"))
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp")
                tmp.write_text(json.dumps({"weights": _FITTED[key].weights.tolist(), "gap_seconds": gap_seconds}))
                os.replace(tmp, path)  # atomic: a half-written file is never read
            except OSError:  # a read-only cache only costs the next process a refit
                pass
    return _FITTED[key]


def _positions(sid: np.ndarray) -> np.ndarray:
    """0-based position of each interaction within its session."""
    starts = np.concatenate([[0], np.flatnonzero(np.diff(sid)) + 1])
    return np.arange(len(sid)) - np.repeat(starts, np.diff(np.append(starts, len(sid))))


def ks_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov statistic (largest gap between the two empirical CDFs)."""
    from scipy.stats import ks_2samp

    return float(ks_2samp(a, b).statistic)
