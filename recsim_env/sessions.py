"""Sessions in the logs: how long real users stay in one sitting, and what their leaving depends on.

A session is a run of one user's consecutive interactions (time order) whose gaps are all below ``gap_seconds``; the
threshold is a choice, stated wherever a number from it is (MovieLens users rate in bursts: most gaps are seconds or
days, so results change little between 30 minutes and a few hours; `benchmarks/sessions.py` reports several).
"""

from __future__ import annotations

import numpy as np

from recsim_env.data import Dataset

__all__ = ["LeaveModel", "ks_distance", "leave_hazard", "session_lengths", "sessions"]


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


def _features(position: np.ndarray, rating: np.ndarray) -> np.ndarray:
    """Leaving-model inputs after an interaction: 1, log(1 + position in session), disliked, liked."""
    return np.stack([np.ones(len(position)), np.log1p(position), rating <= 2, rating >= 4], 1).astype(np.float64)


class LeaveModel:
    """P(a session ends right after an interaction) = sigmoid(w . [1, log(1 + position), disliked, liked]), fitted
    by maximum likelihood on the sessions of the given users (``constant=True``: the intercept alone, a geometric
    session length, as the baseline)."""

    def __init__(self, weights: np.ndarray, gap_seconds: float) -> None:
        self.weights = np.asarray(weights, dtype=np.float64)
        self.gap_seconds = gap_seconds

    @classmethod
    def fit(cls, dataset: Dataset, gap_seconds: float, users: np.ndarray, constant: bool = False) -> "LeaveModel":
        from scipy.optimize import minimize

        if not dataset.has_ratings:
            raise ValueError(f"LeaveModel reads ratings (liked / disliked); {dataset.name} has none.")
        sid, idx = sessions(dataset, gap_seconds, users)
        last = np.ones(len(sid), bool)
        last[:-1] = sid[1:] != sid[:-1]
        x = _features(_positions(sid), dataset.inter_rating[idx])
        if constant:
            x = x[:, :1]

        def loss(w):
            z = x @ w
            nll = np.logaddexp(0, z) - last * z
            grad = x.T @ (1 / (1 + np.exp(-z)) - last)
            return nll.sum(), grad

        w = minimize(loss, np.zeros(x.shape[1]), jac=True, method="L-BFGS-B").x
        return cls(np.pad(w, (0, 4 - len(w))), gap_seconds)

    def hazard(self, position: np.ndarray, rating: np.ndarray) -> np.ndarray:
        return 1 / (1 + np.exp(-_features(np.asarray(position), np.asarray(rating)) @ self.weights))

    def replay(self, dataset: Dataset, users: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Simulated session lengths under log replay: from each real session start of ``users``, the user meets
        its own next logged items in order and leaves after each with the model's probability (a session still going
        when the user's log ends is cut there)."""
        sid, idx = sessions(dataset, self.gap_seconds, users)
        starts = np.concatenate([[0], np.flatnonzero(np.diff(sid)) + 1])
        who = dataset.inter_user[idx]
        bounds = np.append(np.flatnonzero(who[1:] != who[:-1]) + 1, len(who))  # each user's block ends here
        user_end = bounds[np.searchsorted(bounds, np.arange(len(who)), side="right")]
        out = np.empty(len(starts), np.int64)
        for n, s in enumerate(starts):
            r = dataset.inter_rating[idx[s : user_end[s]]]
            leave = rng.random(len(r)) < self.hazard(np.arange(len(r)), r)
            out[n] = (np.argmax(leave) + 1) if leave.any() else len(r)
        return out


def _positions(sid: np.ndarray) -> np.ndarray:
    """0-based position of each interaction within its session."""
    starts = np.concatenate([[0], np.flatnonzero(np.diff(sid)) + 1])
    return np.arange(len(sid)) - np.repeat(starts, np.diff(np.append(starts, len(sid))))


def ks_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov statistic (largest gap between the two empirical CDFs)."""
    from scipy.stats import ks_2samp

    return float(ks_2samp(a, b).statistic)
