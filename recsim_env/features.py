"""Numeric item and user features derived from a :class:`~recsim_env.data.Dataset`.

Item statistics (popularity, mean rating, mean watch ratio) are computed from the *train* users'
interactions only, so that nothing about valid/test users leaks into simulators or observations.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from recsim_env.data import Dataset
from recsim_env.kernels import profile_sums

__all__ = [
    "CoOccurrence", "ItemFeatures", "co_occurrence", "item_features", "item_stats_without", "recency_weights", "taste_profiles",
    "user_features", "window_pairs",
]

# Words that carry no taste in titles and descriptions.
STOP_WORDS = frozenset(
    "a an the of and or in on at to for from by with about as is it its i my me you your we our he she "
    "his her they their this that de la le el les los das der die und & - : ! ? 2 3 ii".split()
)


@dataclass(frozen=True)
class ItemFeatures:
    """Per-item arrays, all of length ``n_items``.

    text: (n_items, d) L2-normalised TF-IDF over the tokens of the item file's token/token_seq
        fields (genres, year, title words ...); all-zero rows for items without text.
    popularity: log(1 + train count) / log(1 + max train count), in [0, 1].
    mean_rating: smoothed mean train rating mapped to [0, 1] (prior mean where few ratings).
    mean_watch_ratio: smoothed mean train watch ratio (real or proxy).
    count: raw train interaction counts.
    vocabulary: the token behind each text column, as 'field=token'.
    """

    text: np.ndarray
    popularity: np.ndarray
    mean_rating: np.ndarray
    mean_watch_ratio: np.ndarray
    count: np.ndarray
    vocabulary: tuple[str, ...]

    @property
    def numeric(self) -> np.ndarray:
        """(n_items, d + 3) float32 block used in observations: text, popularity, rating, watch ratio."""
        return np.concatenate(
            [self.text, self.popularity[:, None], self.mean_rating[:, None], np.clip(self.mean_watch_ratio, 0, 10)[:, None]],
            axis=1,
        ).astype(np.float32)

    @cached_property
    def sparse_text(self) -> tuple[np.ndarray, np.ndarray]:
        """``text`` as padded sparse rows (index (n_items, P) int64, value (n_items, P) float32; value 0 pads), P the
        most non-zeros of an item: profiles of a memory sum P entries per item instead of d (ml-100k: ~3 of 82)."""
        nz = self.text != 0
        width = max(int(nz.sum(1).max(initial=0)), 1)
        order = np.argsort(~nz, axis=1, kind="stable")[:, :width]  # the non-zero columns first, in column order
        value = np.take_along_axis(self.text, order, 1) * np.take_along_axis(nz, order, 1)
        return order.astype(np.int64), value.astype(np.float32)


def _smoothed_mean(values: np.ndarray, items: np.ndarray, n_items: int, prior_weight: float) -> np.ndarray:
    ok = ~np.isnan(values)
    if not ok.any():
        return np.zeros(n_items)
    prior = float(values[ok].mean())
    sums = np.bincount(items[ok], weights=values[ok], minlength=n_items)
    counts = np.bincount(items[ok], minlength=n_items)
    return (sums + prior_weight * prior) / (counts + prior_weight)


@functools.lru_cache(maxsize=8)
def _cached_item_features(dataset: Dataset, min_df: int, max_tokens_per_field: int) -> ItemFeatures:
    n = dataset.n_items
    train = dataset.interactions_of("train")
    items = dataset.inter_item[train]
    count = np.bincount(items, minlength=n).astype(np.float64)
    popularity = np.log1p(count) / max(np.log1p(count.max()), 1e-9)

    ratio = dataset.inter_watch_ratio[train]
    mean_ratio = _smoothed_mean(ratio, items, n, prior_weight=5.0)
    if dataset.has_ratings:
        lo, hi = dataset.rating_range
        mean_rating = (_smoothed_mean(dataset.inter_rating[train], items, n, prior_weight=5.0) - lo) / (hi - lo)
    else:
        mean_rating = np.full(n, 0.5)

    columns: list[np.ndarray] = []
    vocab: list[str] = []
    for fname, ftype in dataset.item_field_types.items():
        if ftype not in ("token", "token_seq"):
            continue
        docs = dataset.item_fields[fname]
        docs = [[d] if ftype == "token" else [t for t in d if t.lower() not in STOP_WORDS] for d in docs]
        df: dict[str, int] = {}
        for doc in docs:
            for tok in set(doc):
                df[tok] = df.get(tok, 0) + 1
        # Tokens shared by a handful to half the catalogue carry taste; ids and stop-words do not.
        kept = [t for t, c in df.items() if min_df <= c <= 0.5 * n]
        kept = sorted(kept, key=lambda t: (-df[t], t))[:max_tokens_per_field]
        if not kept:
            continue
        col = {t: j for j, t in enumerate(kept)}
        block = np.zeros((n, len(kept)))
        for i, doc in enumerate(docs):
            for tok in doc:
                j = col.get(tok)
                if j is not None:
                    block[i, j] = 1.0
        block *= np.log(n / np.array([df[t] for t in kept], dtype=np.float64))[None, :]
        columns.append(block)
        vocab += [f"{fname}={t}" for t in kept]
    text = np.concatenate(columns, axis=1) if columns else np.zeros((n, 0))
    norms = np.linalg.norm(text, axis=1, keepdims=True)
    text = np.divide(text, norms, out=np.zeros_like(text), where=norms > 0)
    return ItemFeatures(
        text=text.astype(np.float32),
        popularity=popularity.astype(np.float32),
        mean_rating=mean_rating.astype(np.float32),
        mean_watch_ratio=mean_ratio.astype(np.float32),
        count=count,
        vocabulary=tuple(vocab),
    )


def item_features(dataset: Dataset, min_df: int = 5, max_tokens_per_field: int = 32) -> ItemFeatures:
    """Item features of ``dataset`` (cached per dataset object)."""
    return _cached_item_features(dataset, min_df, max_tokens_per_field)


@functools.lru_cache(maxsize=8)
def _train_rating_sums(dataset: Dataset) -> tuple[np.ndarray, float]:
    """Per-item sum of train ratings (NaN-free) and the train mean rating (the smoothing prior)."""
    train = dataset.interactions_of("train")
    r = dataset.inter_rating[train]
    ok = ~np.isnan(r)
    sums = np.bincount(dataset.inter_item[train][ok], weights=r[ok], minlength=dataset.n_items)
    return sums, float(r[ok].mean()) if ok.any() else 0.0


def item_stats_without(dataset: Dataset, user: int, items: np.ndarray, prior_weight: float = 5.0) -> tuple[np.ndarray, np.ndarray]:
    """(train count, smoothed mean rating in [0, 1]) of ``items`` with ``user``'s own interactions left out.

    For a user outside the train split this equals :func:`item_features`' ``count`` and ``mean_rating``. For a
    train user it is what a held-out user would see: the item statistics a simulator or head reads must not
    contain the very interaction it is asked to predict (label leakage).
    """
    feats = item_features(dataset)
    items = np.asarray(items, dtype=np.int64)
    count = feats.count[items].astype(np.float64)
    if not dataset.has_ratings:
        return count, feats.mean_rating[items].astype(np.float64)
    sums, prior = _train_rating_sums(dataset)
    total = sums[items].copy()
    if dataset.split[user] == dataset.SPLITS["train"]:
        h = dataset.history(user)
        own_items, own_rating = dataset.inter_item[h], dataset.inter_rating[h]
        for j, i in enumerate(items):
            mine = (own_items == i) & ~np.isnan(own_rating)
            count[j] -= mine.sum()
            total[j] -= own_rating[mine].sum()
    lo, hi = dataset.rating_range
    return count, ((total + prior_weight * prior) / (count + prior_weight) - lo) / (hi - lo)


def window_pairs(items: np.ndarray, window: int, n_items: int) -> np.ndarray:
    """Sorted unique codes ``i * n_items + j`` of ordered pairs i != j at most ``window`` positions apart in ``items``."""
    codes = [items[:-d] * n_items + items[d:] for d in range(1, min(window, len(items) - 1) + 1)]
    codes += [items[d:] * n_items + items[:-d] for d in range(1, min(window, len(items) - 1) + 1)]
    if not codes:
        return np.zeros(0, dtype=np.int64)
    codes = np.unique(np.concatenate(codes).astype(np.int64))
    return codes[codes // n_items != codes % n_items]


@dataclass(frozen=True)
class CoOccurrence:
    """How often train users consumed two items close together in time (item-to-item affinity).

    counts: (n_items, n_items) number of train users in whose chronological history i and j lie at
        most ``window`` positions apart (each user counts a pair once).
    users: (n_items,) number of train users with the item.
    """

    counts: np.ndarray
    users: np.ndarray
    window: int

    def pair_affinity(
        self, hist: np.ndarray, items: np.ndarray,
        own_pairs: np.ndarray | None = None, own_hist: np.ndarray | None = None, own_items: np.ndarray | None = None,
    ) -> np.ndarray:
        """(N, H, C) ``counts[h, j] / sqrt(users[h] * users[j])`` of memory items ``hist`` (N, H; -1 padding) and ``items`` (N, C).

        For a user who is among the counted train users (fitting), pass that user's own contribution:
        ``own_pairs`` (N, H, C) and ``own_hist`` (N, H) / ``own_items`` (N, C), the items the user has;
        they are left out, so the fit sees the affinity a held-out user would.
        """
        safe = np.maximum(hist, 0)
        if own_pairs is None:
            return self.normalized[safe[:, :, None], items[:, None, :]]
        pair = self.counts[safe[:, :, None], items[:, None, :]]
        n_h = self.users[safe].astype(np.float64)
        n_c = self.users[items].astype(np.float64)
        return self._normalize(pair - own_pairs, n_h - own_hist, n_c - own_items)

    @staticmethod
    def _normalize(pair: np.ndarray, n_h: np.ndarray, n_c: np.ndarray) -> np.ndarray:
        return pair / np.sqrt(np.maximum(n_h, 1.0)[..., :, None] * np.maximum(n_c, 1.0)[..., None, :])

    @cached_property
    def normalized(self) -> np.ndarray:
        """(n_items, n_items) float32 ``counts[i, j] / sqrt(users[i] * users[j])`` (users floored at 1), computed once."""
        users = self.users.astype(np.float64)
        return self._normalize(self.counts, users, users).astype(np.float32)

    @staticmethod
    def weighted(pairs: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """(N, C) mean of :meth:`pair_affinity` over the memory with ``weights`` (N, H); 0 for an empty memory."""
        total = weights.sum(1, keepdims=True)
        return np.matmul(weights[:, None, :], pairs)[:, 0, :] / np.where(total > 0, total, 1.0)


@functools.lru_cache(maxsize=8)
def co_occurrence(dataset: Dataset, window: int) -> CoOccurrence:
    """Item co-occurrence of the train users' histories within ``window`` positions (cached per dataset)."""
    n = dataset.n_items
    if n * n * 4 > 2**31:
        raise ValueError(
            f"Dataset {dataset.name!r} has {n} items: a dense co-occurrence matrix would need {n * n * 4 / 2**30:.1f} GiB. "
            f"Set FittedUserModelConfig(co_window=0) to fit without the item-to-item term."
        )
    counts = np.zeros(n * n, dtype=np.float32)
    users = np.zeros(n, dtype=np.float32)
    for u in dataset.users("train"):
        items = dataset.inter_item[dataset.history(u)]
        users[np.unique(items)] += 1
        counts[window_pairs(items, window, n)] += 1
    return CoOccurrence(counts.reshape(n, n), users, window)


def user_features(dataset: Dataset, max_values_per_field: int = 24) -> np.ndarray:
    """(n_users, d) float32 one-hot of the user file's token fields (frequent values only).

    Numeric-looking ages are bucketed by decade. Users of datasets without a user file get a
    zero-width array.
    """
    blocks: list[np.ndarray] = []
    n = dataset.n_users
    for fname, ftype in dataset.user_field_types.items():
        if ftype != "token":
            continue
        values = list(dataset.user_fields[fname])
        if fname == "age" and all(v.isdigit() for v in values):
            values = [f"{int(v) // 10 * 10}s" for v in values]
        uniq, counts = np.unique(values, return_counts=True)
        if len(uniq) > 0.5 * n:  # an id-like field (zip code): no use as a category
            continue
        keep = uniq[np.argsort(-counts, kind="stable")][:max_values_per_field]
        index = {v: j for j, v in enumerate(keep)}
        block = np.zeros((n, len(keep)), dtype=np.float32)
        for i, v in enumerate(values):
            j = index.get(v)
            if j is not None:
                block[i, j] = 1.0
        blocks.append(block)
    return np.concatenate(blocks, axis=1) if blocks else np.zeros((n, 0), dtype=np.float32)


def recency_weights(hist: np.ndarray, decay: float) -> np.ndarray:
    """(N, H) weights ``decay ** age`` of right-aligned memory items (most recent last, age 0), 0 on padding."""
    age = np.arange(hist.shape[1] - 1, -1, -1, dtype=np.float32)
    return (decay**age)[None, :] * (hist >= 0)


def taste_profiles(
    feats: ItemFeatures, hist: np.ndarray, ratio: np.ndarray, skipped: np.ndarray, decay: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit-norm taste profiles (N, d) of watched and of skipped memory items (recency-weighted sums of their text
    vectors, weights ``recency_weights``), and the memory's mean watch ratio (N,; NaN where none is known).

    ``hist`` is (N, H), right-aligned (most recent last), -1 for padding. Computed by
    :func:`recsim_env.kernels.profile_sums` over the items' sparse text (:attr:`ItemFeatures.sparse_text`).
    """
    index, value = feats.sparse_text
    sums, mean_ratio = profile_sums(
        np.ascontiguousarray(hist, np.int64), np.ascontiguousarray(skipped, np.bool_),
        np.ascontiguousarray(ratio, np.float64), float(decay), index, value, feats.text.shape[1],
    )
    return sums[0], sums[1], mean_ratio
