"""Candidate generators for ``action_mode="candidates"``: which M items the policy may rank.

A generator is any object with ``generate(consumed, hist_items, hist_skipped, rngs) -> (N, M)``
item indices; it must not return consumed items (unless the catalogue is exhausted) nor repeat an
item within a row, and must draw its randomness of row i from ``rngs[i]`` only.
"""

from __future__ import annotations

import functools
from typing import Protocol, Sequence

import numpy as np

from recsim_env.data import Dataset
from recsim_env.features import item_features

__all__ = ["CandidateGenerator", "MixedCandidates", "item_factors"]


@functools.lru_cache(maxsize=8)
def item_factors(dataset: Dataset, rank: int = 32) -> np.ndarray:
    """(n_items, rank) item factors of a truncated SVD of the binary train user-item matrix."""
    train = dataset.interactions_of("train")
    users = np.unique(dataset.inter_user[train], return_inverse=True)[1]
    mat = np.zeros((users.max() + 1, dataset.n_items), dtype=np.float32)
    mat[users, dataset.inter_item[train]] = 1.0
    k = min(rank, min(mat.shape) - 1)
    _, s, vt = np.linalg.svd(mat, full_matrices=False)
    return (vt[:k].T * np.sqrt(s[:k])).astype(np.float32)


class CandidateGenerator(Protocol):
    num_candidates: int

    def generate(
        self, consumed: np.ndarray, hist_items: np.ndarray, hist_skipped: np.ndarray,
        rngs: Sequence[np.random.Generator],
    ) -> np.ndarray:
        ...


class MixedCandidates:
    """Popular, collaborative and random items, shuffled together.

    popular: most-interacted train items not yet consumed.
    collaborative: top items by a rank-``rank`` truncated SVD of the train user-item matrix, scored
        against the mean factor of the user's watched memory items.
    random: uniform over the rest of the catalogue.
    """

    def __init__(
        self, dataset: Dataset, num_candidates: int = 50, fractions: tuple[float, float, float] = (0.4, 0.4, 0.2),
        rank: int = 32,
    ) -> None:
        if num_candidates < 1 or num_candidates > dataset.n_items:
            raise ValueError(f"num_candidates must be in [1, n_items={dataset.n_items}], got {num_candidates}.")
        if len(fractions) != 3 or min(fractions) < 0 or sum(fractions) <= 0:
            raise ValueError(f"fractions must be three non-negative numbers (popular, collaborative, random), got {fractions}.")
        self.num_candidates = num_candidates
        total = sum(fractions)
        self.n_pop = int(round(num_candidates * fractions[0] / total))
        self.n_cf = int(round(num_candidates * fractions[1] / total))
        self.n_rand = num_candidates - self.n_pop - self.n_cf
        if self.n_rand < 0:
            self.n_cf += self.n_rand
            self.n_rand = 0
        self.n_items = dataset.n_items
        self.popularity = item_features(dataset).count + np.linspace(0, 1e-3, dataset.n_items)[::-1]  # unique ranks
        self.item_factors = item_factors(dataset, rank)

    def generate(
        self, consumed: np.ndarray, hist_items: np.ndarray, hist_skipped: np.ndarray,
        rngs: Sequence[np.random.Generator],
    ) -> np.ndarray:
        n = len(consumed)
        taken = consumed.copy()
        out = np.empty((n, self.num_candidates), dtype=np.int64)
        rows = np.arange(n)[:, None]
        pop = np.where(taken, -np.inf, self.popularity[None, :])
        top_pop = np.argpartition(-pop, self.n_pop - 1, axis=1)[:, : self.n_pop] if self.n_pop else np.zeros((n, 0), np.int64)
        taken[rows, top_pop] = True
        valid = (hist_items >= 0) & ~hist_skipped
        user_vec = (self.item_factors[np.where(valid, hist_items, 0)] * valid[..., None]).sum(1)
        cf = np.where(taken, -np.inf, user_vec @ self.item_factors.T)
        top_cf = np.argpartition(-cf, self.n_cf - 1, axis=1)[:, : self.n_cf] if self.n_cf else np.zeros((n, 0), np.int64)
        taken[rows, top_cf] = True
        out[:, : self.n_pop] = top_pop
        out[:, self.n_pop : self.n_pop + self.n_cf] = top_cf
        for i, rng in enumerate(rngs):
            free = np.flatnonzero(~taken[i])
            if len(free) >= self.n_rand:
                out[i, self.n_pop + self.n_cf :] = free[rng.choice(len(free), self.n_rand, replace=False)]
            else:  # catalogue nearly exhausted: fill with consumed items rather than fail
                fill = np.concatenate([free, np.flatnonzero(taken[i] & consumed[i])])
                out[i, self.n_pop + self.n_cf :] = fill[: self.n_rand]
            out[i] = out[i, rng.permutation(self.num_candidates)]
        return out
