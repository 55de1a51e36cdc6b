"""A user model fitted on the train users' real interactions: fast, exact and reproducible.

Signals, all computed from a request's memory and the train split's item statistics:

* taste: cosine between an item's text/genre vector and the user's recency-weighted profile of
  watched items (``aff_pos``) and of fast-skipped items (``aff_neg``);
* item popularity (log train count) and smoothed mean rating;
* item-to-item co-occurrence (``co_occurrence``): how often train users consumed the item within
  ``co_window`` positions of the items the user watched recently (cosine-normalised counts,
  recency-weighted over the memory). Each train user is left out of the counts its own examples
  are fitted on, as a held-out user would be;
* recency: memory items are weighted by ``decay ** age``; ``decay`` is chosen on the valid users.

Heads:

* choice: a multinomial logit over the slate, ``u = X @ w``, fitted by maximum likelihood on
  real next choices of train users against sampled non-chosen items (half uniform, half
  popularity-weighted). Page mode adds an outside option ("none") of utility ``b_none``; by default
  ``b_none`` is the ``outside_quantile`` quantile of the utility of random catalogue items for
  train users, i.e. a random item beats "none" with probability ``1 - outside_quantile``.
  MovieLens logs no impressions, so this level is an assumption (documented and configurable),
  not a fitted quantity.
* interest (feed mode): an item is played past the first seconds with probability
  ``sigmoid(u - b_none)``, the binary form of the same outside option.
* watch ratio: a softmax regression over watch-ratio bins fitted on the train users' consumed
  items (the 5 rating-proxy values on MovieLens; 0.1-wide bins plus ">1" on real play-time data).
  A ratio below the skip threshold is a fast skip. Where the dataset has ratings, ratings are read
  back from the proxy.
* noise: with probability ``slip`` an item is skipped by accident (feed), or the click is drawn
  uniformly (page).

Already-consumed items and in-slate duplicates (``request.repeated``) are never clicked and are
always fast-skipped. Each request draws exactly ``4 * K + 1`` uniforms from its own generator.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from numba import njit
from scipy.optimize import minimize

from recsim_env.data import Dataset, cache_dir
from recsim_env.kernels import profile_sums, recency
from recsim_env.features import (
    CoOccurrence, ItemFeatures, co_occurrence, item_features, recency_weights, taste_profiles, window_pairs,
)
from recsim_env.validation import check_int, check_real
from simulators.base import RequestBatch, ResponseBatch, SimulationRequest, SimulationResponse, config_from_dict

__all__ = ["FittedUserModel", "FittedUserModelConfig", "choice_features"]

CHOICE_FEATURES = ("aff_pos", "aff_neg", "popularity", "mean_rating", "co_occurrence")
WATCH_FEATURES = ("bias",) + CHOICE_FEATURES + ("item_watch_ratio", "user_watch_ratio")


@dataclass(frozen=True)
class FittedUserModelConfig:
    """How the data-fitted user model is fitted.

    memory: number of most recent memory items the model reads.
    decays: candidate recency decays; the one with the best valid-user log-likelihood is kept.
    examples_per_user: real next choices sampled per train user for fitting.
    negatives: non-chosen items per example (half uniform, half popularity-weighted).
    min_history: examples need at least this many earlier interactions.
    outside_quantile: quantile of random-item utility that sets the "none" option (see module doc).
    co_window: items at most this many positions apart in a train history co-occur; 0 drops the term.
    slip: probability of an accidental skip (feed) or a uniform click (page).
    l2: ridge penalty of both regressions.
    seed: seed of the example sampling.
    """

    memory: int = 50
    decays: tuple[float, ...] = (0.7, 0.8, 0.9, 0.97)
    examples_per_user: int = 40
    negatives: int = 9
    min_history: int = 3
    outside_quantile: float = 0.98
    co_window: int = 50
    slip: float = 0.02
    l2: float = 1e-3
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("memory", "examples_per_user", "negatives", "min_history"):
            check_int(f"simulator_kwargs[{name!r}]", getattr(self, name), 1)
        check_int("simulator_kwargs['co_window'] (0 drops the co-occurrence term)", self.co_window, 0)
        check_int("simulator_kwargs['seed']", self.seed)
        if not isinstance(self.decays, tuple) or not self.decays:
            raise ValueError(f"simulator_kwargs['decays'] must be a non-empty tuple of values in (0, 1], got {self.decays!r}.")
        for d in self.decays:
            check_real("simulator_kwargs['decays'] values", d, 0.0, 1.0, low_open=True)
        check_real("simulator_kwargs['outside_quantile']", self.outside_quantile, 0.0, 1.0, low_open=True)
        if self.outside_quantile >= 1.0:
            raise ValueError(f"simulator_kwargs['outside_quantile'] must be < 1, got {self.outside_quantile}.")
        check_real("simulator_kwargs['slip']", self.slip, 0.0, 1.0)
        if self.slip >= 1.0:
            raise ValueError(f"simulator_kwargs['slip'] must be < 1, got {self.slip}.")
        check_real("simulator_kwargs['l2']", self.l2, 0.0)

    @classmethod
    def from_dict(cls, values: dict) -> "FittedUserModelConfig":
        return config_from_dict(cls, values)


def choice_features(
    feats: ItemFeatures, pos: np.ndarray, neg: np.ndarray, items: np.ndarray, co: np.ndarray
) -> np.ndarray:
    """(N, C, 5) features of ``items`` (N, C) for users with profiles ``pos``/``neg`` (N, d) and co-occurrence ``co`` (N, C)."""
    vec = feats.text[items]  # (N, C, d)
    aff_pos = (vec * pos[:, None, :]).sum(-1)
    aff_neg = (vec * neg[:, None, :]).sum(-1)
    return np.stack(
        [aff_pos, aff_neg, feats.popularity[items], feats.mean_rating[items] - 0.5, co], axis=-1
    ).astype(np.float64)


def _co_affinity(
    cooc: CoOccurrence | None, hist: np.ndarray, skipped: np.ndarray, decay: float, items: np.ndarray,
    pairs: np.ndarray | None = None,
) -> np.ndarray:
    """Co-occurrence of ``items`` with the watched (not skipped) memory; zeros without a matrix.

    ``pairs``: precomputed :meth:`CoOccurrence.pair_affinity` (it does not depend on ``decay``).
    """
    if cooc is None:
        return np.zeros(items.shape)
    pairs = cooc.pair_affinity(hist, items) if pairs is None else pairs
    return CoOccurrence.weighted(pairs, recency_weights(hist, decay) * ~skipped)


@njit(cache=True, nogil=True)
def _answer_kernel(hist, skipped, decay, prof, user_ratio, slate, repeated, U, page, index, value, popularity,
                   mean_rating, mean_watch, co, w, b_none, W, bin_low, bin_high, skip_below, slip, rating_lo,
                   rating_span, prior_ratio):
    """The data-fitted user's answers to N slates (see the module docstring), one row at a time.

    ``prof`` (2, N, d) are the taste profiles, ``co`` the normalised co-occurrence matrix ((0, 0): no term), ``W``
    the watch-bin weights ((0, 0): no watch model), ``rating_span`` 0: no ratings. Returns (utilities, played,
    clicked, skipped, watch, rating, probs): probs is the page distribution (N, K + 1) or P(skip) (N, K)."""
    n, K = slate.shape
    H = hist.shape[1]
    P = index.shape[1]
    B = W.shape[1]
    util = np.empty((n, K))
    played = np.zeros((n, K), np.bool_)
    clicked = np.zeros((n, K), np.bool_)
    skip = np.zeros((n, K), np.bool_)
    watch = np.full((n, K), np.nan)
    rating = np.full((n, K), np.nan)
    probs = np.zeros((n, K + 1)) if page else np.zeros((n, K))
    x = np.empty(8)
    z = np.empty(max(B, 1))
    sat = np.full(K, np.nan)
    weights = recency(decay, H)
    for i in range(n):
        ur = user_ratio[i] if not np.isnan(user_ratio[i]) else prior_ratio
        total = 0.0
        if co.shape[0]:
            for h in range(H):
                if hist[i, h] >= 0 and not skipped[i, h]:
                    total += weights[h]
        for k in range(K):
            item = slate[i, k]
            a_pos, a_neg = 0.0, 0.0
            for p in range(P):
                a_pos += value[item, p] * prof[0, i, index[item, p]]
                a_neg += value[item, p] * prof[1, i, index[item, p]]
            c = 0.0
            if total > 0:
                for h in range(H):
                    if hist[i, h] >= 0 and not skipped[i, h]:
                        c += weights[h] * co[hist[i, h], item]
                c /= total
            x[0], x[1], x[2], x[3], x[4], x[5] = 1.0, a_pos, a_neg, popularity[item], mean_rating[item] - 0.5, c
            x[6], x[7] = mean_watch[item], ur
            util[i, k] = w[0] * a_pos + w[1] * a_neg + w[2] * x[3] + w[3] * x[4] + w[4] * c
            if B:  # watch bin (softmax over bins), then a uniform position inside it
                top = -np.inf
                for b in range(B):
                    z[b] = 0.0
                    for f in range(8):
                        z[b] += x[f] * W[f, b]
                    top = max(top, z[b])
                norm = 0.0
                for b in range(B):
                    z[b] = np.exp(z[b] - top)
                    norm += z[b]
                cdf, chosen = 0.0, 0
                for b in range(B):
                    cdf += z[b] / norm
                    if U[i, K + k] > cdf:
                        chosen += 1
                chosen = min(chosen, B - 1)
                sat[k] = bin_low[chosen] + (bin_high[chosen] - bin_low[chosen]) * U[i, 2 * K + k]
        if page:
            top = b_none
            for k in range(K):
                if not repeated[i, k]:
                    top = max(top, util[i, k])
            norm, allowed = 0.0, 1
            for k in range(K):
                probs[i, k] = 0.0 if repeated[i, k] else np.exp(util[i, k] - top)
                norm += probs[i, k]
                allowed += not repeated[i, k]
            probs[i, K] = np.exp(b_none - top)
            norm += probs[i, K]
            cdf, choice = 0.0, 0
            for k in range(K + 1):
                probs[i, k] = (1 - slip) * probs[i, k] / norm + (slip / allowed if (k == K or not repeated[i, k]) else 0.0)
                cdf += probs[i, k]
                if U[i, 4 * K] > cdf:
                    choice += 1
            if choice < K:
                played[i, choice] = clicked[i, choice] = True
                watch[i, choice] = sat[choice]
                skip[i, choice] = sat[choice] < skip_below
                if rating_span > 0:
                    rating[i, choice] = rating_lo + sat[choice] * rating_span
        else:
            for k in range(K):
                interest = 1.0 / (1.0 + np.exp(-(util[i, k] - b_none)))
                probs[i, k] = 1.0 if repeated[i, k] else 1.0 - (1 - slip) * interest
                interested = U[i, k] < interest and not repeated[i, k] and U[i, 3 * K + k] >= slip
                played[i, k] = True
                watch[i, k] = (sat[k] if B else np.nan) if interested else U[i, 2 * K + k] * skip_below
                skip[i, k] = not interested or watch[i, k] < skip_below
                clicked[i, k] = not skip[i, k]
                if interested and rating_span > 0 and not np.isnan(watch[i, k]):
                    rating[i, k] = rating_lo + watch[i, k] * rating_span
    return util, played, clicked, skip, watch, rating, probs


class _OwnHistories:
    """Each train user's own co-occurring pairs and items, to leave the user out of the counts."""

    def __init__(self, dataset: Dataset, window: int) -> None:
        n = dataset.n_items
        self.n = n
        pairs, items = [], []
        for u in dataset.users("train"):
            seq = dataset.inter_item[dataset.history(u)]
            pairs.append(int(u) * n * n + window_pairs(seq, window, n))
            items.append(int(u) * n + np.unique(seq))
        self.pairs = np.sort(np.concatenate(pairs)) if pairs else np.zeros(0, np.int64)
        self.items = np.sort(np.concatenate(items)) if items else np.zeros(0, np.int64)

    @staticmethod
    def _has(sorted_codes: np.ndarray, codes: np.ndarray) -> np.ndarray:
        at = np.minimum(np.searchsorted(sorted_codes, codes), max(len(sorted_codes) - 1, 0))
        return (sorted_codes[at] == codes) if len(sorted_codes) else np.zeros(codes.shape, bool)

    def contribution(self, users: np.ndarray, hist: np.ndarray, items: np.ndarray) -> tuple[np.ndarray, ...]:
        """own_pairs (N, H, C), own_hist (N, H) and own_items (N, C) of train ``users`` (N,)."""
        u = users.astype(np.int64)[:, None]
        safe = np.maximum(hist, 0).astype(np.int64)
        codes = (u[:, :, None] * self.n + safe[:, :, None]) * self.n + items[:, None, :]
        own_pairs = self._has(self.pairs, codes) & (hist >= 0)[:, :, None]
        return own_pairs, self._has(self.items, u * self.n + safe) & (hist >= 0), self._has(self.items, u * self.n + items)


def _watch_features(
    feats: ItemFeatures, cf: np.ndarray, items: np.ndarray, user_ratio: np.ndarray, prior_ratio: float
) -> np.ndarray:
    user = np.where(np.isnan(user_ratio), prior_ratio, user_ratio)
    ones = np.ones(items.shape)
    return np.concatenate(
        [ones[..., None], cf, feats.mean_watch_ratio[items][..., None], np.broadcast_to(user[:, None], items.shape)[..., None]],
        axis=-1,
    )


def _fit_conditional_logit(X: np.ndarray, l2: float) -> tuple[np.ndarray, float]:
    """Weights maximising log P(option 0) under softmax(X @ w); returns (w, mean log-lik)."""
    n, _, d = X.shape

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        u = X @ w
        u -= u.max(1, keepdims=True)
        p = np.exp(u)
        p /= p.sum(1, keepdims=True)
        ll = np.log(p[:, 0] + 1e-300).mean()
        grad = (X[:, 0, :] - np.einsum("nc,ncd->nd", p, X)).mean(0)
        return -ll + l2 * w @ w, -grad + 2 * l2 * w

    res = minimize(loss, np.zeros(d), jac=True, method="L-BFGS-B")
    return res.x, -float(res.fun - l2 * res.x @ res.x)


def _fit_softmax_regression(X: np.ndarray, y: np.ndarray, n_classes: int, l2: float) -> np.ndarray:
    """Multinomial logistic regression weights (d, n_classes)."""
    n, d = X.shape
    Y = np.eye(n_classes)[y]

    def loss(flat: np.ndarray) -> tuple[float, np.ndarray]:
        W = flat.reshape(d, n_classes)
        z = X @ W
        z -= z.max(1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(1, keepdims=True)
        ll = np.log((p * Y).sum(1) + 1e-300).mean()
        grad = X.T @ (p - Y) / n
        return -ll + l2 * (W * W).sum(), (grad + 2 * l2 * W).ravel()

    res = minimize(loss, np.zeros(d * n_classes), jac=True, method="L-BFGS-B")
    return res.x.reshape(d, n_classes)


def _right_aligned(dataset: Dataset, user: int, end: int, memory: int) -> tuple[np.ndarray, np.ndarray]:
    """Memory items (indices into the interaction arrays) of ``user`` before position ``end``."""
    h = dataset.history(user)
    idx = np.arange(h.start, h.start + end)[-memory:]
    return idx, np.pad(idx, (memory - len(idx), 0), constant_values=-1)


def build_examples(
    dataset: Dataset, split: str, config: FittedUserModelConfig, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Real next choices of ``split`` users, each with its memory and sampled non-chosen items."""
    feats = item_features(dataset)
    p_pop = feats.count + 1.0
    p_pop /= p_pop.sum()
    H = config.memory
    rows_hist, rows_target, rows_neg, rows_user = [], [], [], []
    users = dataset.users(split)
    n_long = 0
    for u in users:
        h = dataset.history(u)
        n = h.stop - h.start
        if n <= config.min_history:
            continue
        n_long += 1
        ends = np.arange(config.min_history, n)
        if len(ends) > config.examples_per_user:
            ends = np.sort(rng.choice(ends, config.examples_per_user, replace=False))
        seen = np.zeros(dataset.n_items, bool)
        seen[dataset.inter_item[h]] = True
        n_neg = config.negatives
        draws = np.concatenate(
            [rng.integers(0, dataset.n_items, size=(len(ends), 4 * n_neg)),
             rng.choice(dataset.n_items, size=(len(ends), 4 * n_neg), p=p_pop)], axis=1
        )
        for row, end in zip(draws, ends):
            half = n_neg // 2
            uni = row[: 4 * n_neg][~seen[row[: 4 * n_neg]]][: n_neg - half]
            pop = row[4 * n_neg :][~seen[row[4 * n_neg :]]][:half]
            neg = np.concatenate([uni, pop])
            if len(neg) < n_neg:
                continue
            _, padded = _right_aligned(dataset, u, end, H)
            rows_hist.append(padded)
            rows_target.append(h.start + end)
            rows_neg.append(neg)
            rows_user.append(u)
    if not rows_target:
        raise ValueError(
            f"The data-fitted user model needs {split} examples and {dataset.name!r} gives none: {len(users)} {split} "
            f"user(s) of {dataset.n_users}, {n_long} with more than min_history={config.min_history} interactions, "
            f"and a next choice needs {config.negatives} items the user never saw among the {dataset.n_items} items. "
            f"Use a dataset with more users / items (each split gets its share of users: split_fractions of "
            f"load_dataset) or lower min_history / negatives (simulator_kwargs of the 'fitted' simulator)."
        )
    hist_idx = np.array(rows_hist)
    valid = hist_idx >= 0
    safe = np.where(valid, hist_idx, 0)
    ratio = np.where(valid, dataset.inter_watch_ratio[safe], np.nan)
    skipped = valid & (ratio < dataset.thresholds.skip_below)
    return {
        "hist": np.where(valid, dataset.inter_item[safe], -1),
        "ratio": ratio,
        "skipped": skipped,
        "target_inter": np.array(rows_target),
        "user": np.array(rows_user, dtype=np.int64),
        "items": np.concatenate([dataset.inter_item[rows_target][:, None], np.array(rows_neg)], axis=1),
    }


class FittedUserModel:
    """The data-fitted simulator; build it with :meth:`fit` (cached per dataset and config)."""

    def __init__(
        self,
        dataset: Dataset,
        config: FittedUserModelConfig,
        decay: float,
        choice_weights: np.ndarray,
        b_none: float,
        watch_weights: np.ndarray | None,
        bin_low: np.ndarray,
        bin_high: np.ndarray,
        fit_report: dict,
        co_occurrence: CoOccurrence | None = None,
    ) -> None:
        self.dataset = dataset
        self.config = config
        self.features = item_features(dataset)
        self.decay = decay
        self.choice_weights = choice_weights
        self.b_none = b_none
        self.watch_weights = watch_weights
        self.bin_low = bin_low
        self.bin_high = bin_high
        self.fit_report = fit_report
        self.co_occurrence = co_occurrence
        self._co_matrix = np.zeros((0, 0), np.float32) if co_occurrence is None else co_occurrence.normalized
        self._watch_matrix = np.zeros((8, 0)) if watch_weights is None else np.ascontiguousarray(watch_weights, np.float64)
        self._bins = (np.asarray(bin_low, np.float64), np.asarray(bin_high, np.float64))
        ok = ~np.isnan(dataset.inter_watch_ratio)
        self._prior_ratio = float(dataset.inter_watch_ratio[ok].mean()) if ok.any() else 0.5  # memories with no known ratio

    name = "fitted"

    def __repr__(self) -> str:
        return f"FittedUserModel(dataset={self.dataset.name!r}, decay={self.decay}, b_none={self.b_none:.3f})"

    # ----------------------------------------------------------------------------------- fitting
    @classmethod
    def fit(cls, dataset: Dataset, config: FittedUserModelConfig | None = None) -> "FittedUserModel":
        """Fit on the train users of ``dataset``; the recency decay is picked on the valid users."""
        return _fit_cached(dataset, config or FittedUserModelConfig())

    @classmethod
    def _fit(cls, dataset: Dataset, config: FittedUserModelConfig) -> "FittedUserModel":
        rng = np.random.default_rng(config.seed)
        feats = item_features(dataset)
        cooc = co_occurrence(dataset, config.co_window) if config.co_window else None
        own = _OwnHistories(dataset, config.co_window) if config.co_window else None
        train = build_examples(dataset, "train", config, rng)
        valid = build_examples(dataset, "valid", config, rng)

        pair_cache: dict[str, np.ndarray] = {}

        def design(ex: dict, decay: float, key: str, items: np.ndarray | None = None):
            """Choice features of ``items`` (default: the examples' options) and the memories' mean watch ratio.

            ``key`` names the (examples, items) pair for the decay-free co-occurrence cache; train
            examples ('train', 'random') leave their own user out of the counts.
            """
            items = ex["items"] if items is None else items
            pos, neg, mean_ratio = taste_profiles(feats, ex["hist"], ex["ratio"], ex["skipped"], decay)
            if cooc is not None and key not in pair_cache:
                mine = own.contribution(ex["user"], ex["hist"], items) if key != "valid" else ()
                pair_cache[key] = cooc.pair_affinity(ex["hist"], items, *mine)
            co = _co_affinity(cooc, ex["hist"], ex["skipped"], decay, items, pair_cache.get(key))
            return choice_features(feats, pos, neg, items, co), mean_ratio

        best = None
        report: dict = {"n_train_examples": int(len(train["items"])), "decays": {}}
        for decay in config.decays:
            X, _ = design(train, decay, "train")
            w, ll = _fit_conditional_logit(X, config.l2)
            if len(valid["items"]):
                Xv, _ = design(valid, decay, "valid")
                uv = Xv @ w
                uv -= uv.max(1, keepdims=True)
                vll = float((uv[:, 0] - np.log(np.exp(uv).sum(1))).mean())
            else:
                vll = ll
            report["decays"][decay] = {"train_loglik": ll, "valid_loglik": vll}
            if best is None or vll > best[0]:
                best = (vll, decay, w)
        _, decay, w = best
        X, mean_ratio = design(train, decay, "train")

        # Outside option: utility of uniformly random items for the same memories.
        rand_items = rng.integers(0, dataset.n_items, size=(len(X), 4))
        u_rand = design(train, decay, "random", rand_items)[0] @ w
        b_none = float(np.quantile(u_rand, config.outside_quantile))

        ratio = dataset.inter_watch_ratio[train["target_inter"]]
        watch_weights, lo, hi = None, np.zeros(0), np.zeros(0)
        if not np.isnan(ratio).all():
            if dataset.watch_ratio_source == "rating proxy":
                values = np.unique(ratio[~np.isnan(ratio)])
                lo, hi = values, values
                y = np.searchsorted(values, ratio)
            else:
                edges = np.concatenate([np.linspace(0, 1, 11), [max(2.0, float(np.nanmax(ratio)))]])
                lo, hi = edges[:-1], edges[1:]
                y = np.clip(np.searchsorted(edges, ratio, side="right") - 1, 0, len(lo) - 1)
            ok = ~np.isnan(ratio)
            target = train["items"][:, :1]
            Xw = _watch_features(feats, X[:, :1, :], target, mean_ratio, 0.5)[:, 0, :]
            watch_weights = _fit_softmax_regression(Xw[ok], y[ok], len(lo), config.l2)
        report.update(decay=decay, choice_weights=dict(zip(CHOICE_FEATURES, map(float, w))), b_none=b_none)
        return cls(dataset, config, decay, w, b_none, watch_weights, lo, hi, report, cooc)

    # -------------------------------------------------------------------------------- answering
    def _memory(self, batch: RequestBatch) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The last ``config.memory`` memory items of each row (fewer columns when the memory holds fewer: padding on
        the left weighs nothing)."""
        m = self.config.memory
        return batch.history_items[:, -m:], batch.history_watch_ratio[:, -m:], batch.history_skipped[:, -m:]

    def utilities(self, requests: Sequence[SimulationRequest]) -> np.ndarray:
        """(N, K) choice utilities of each request's slate (deterministic)."""
        batch = RequestBatch.from_requests(requests, self.config.memory)
        return self._choice_features(*self._memory(batch), batch.slate)[0] @ self.choice_weights

    def expected_ratings(self, requests: Sequence[SimulationRequest]) -> list[np.ndarray]:
        """Each slate item's expected rating if the user watches it (the watch-ratio head's distribution over the
        rating-proxy levels, read back as stars); NaN where the dataset's watch ratio is not a rating proxy."""
        ds = self.dataset
        if self.watch_weights is None or ds.watch_ratio_source != "rating proxy" or ds.rating_range is None:
            return [np.full(len(r.slate), np.nan) for r in requests]
        batch = RequestBatch.from_requests(requests, self.config.memory)
        cf, user_ratio = self._choice_features(*self._memory(batch), batch.slate)
        z = _watch_features(self.features, cf, batch.slate, user_ratio, self._prior_ratio) @ self.watch_weights
        p = np.exp(z - z.max(-1, keepdims=True))
        p /= p.sum(-1, keepdims=True)  # (N, K, levels)
        return list(p @ ds.rating_of_ratio(self.bin_low))

    def _choice_features(self, hist, ratio, skipped, slate) -> tuple[np.ndarray, np.ndarray]:
        pos, neg, user_ratio = taste_profiles(self.features, hist, ratio, skipped, self.decay)
        co = _co_affinity(self.co_occurrence, hist, skipped, self.decay, slate)
        return choice_features(self.features, pos, neg, slate, co), user_ratio

    def respond(
        self, requests: Sequence[SimulationRequest], rngs: Sequence[np.random.Generator]
    ) -> list[SimulationResponse]:
        if len(requests) != len(rngs):
            raise ValueError(f"respond() needs one Generator per request: got {len(requests)} requests, {len(rngs)} rngs.")
        out: list[SimulationResponse | None] = [None] * len(requests)
        # One sub-batch per (mode, slate size): normally the whole batch.
        groups: dict[tuple[str, int], list[int]] = {}
        for i, r in enumerate(requests):
            if r.mode not in ("page", "feed"):
                raise ValueError(f"SimulationRequest.mode must be 'page' or 'feed', got {r.mode!r}.")
            groups.setdefault((r.mode, len(r.slate)), []).append(i)
        for idx in groups.values():
            batch = RequestBatch.from_requests([requests[i] for i in idx], self.config.memory)
            for i, resp in zip(idx, self.respond_batch(batch, [rngs[i] for i in idx]).responses()):
                out[i] = resp
        return out  # type: ignore[return-value]

    def respond_batch(self, batch: RequestBatch, rngs: Sequence[np.random.Generator]) -> ResponseBatch:
        """The answers of :meth:`respond` for a stacked batch (what the environment calls)."""
        n, k = batch.slate.shape
        if len(rngs) != n:
            raise ValueError(f"respond_batch() needs one Generator per request: got {n} requests, {len(rngs)} rngs.")
        if batch.mode not in ("page", "feed"):
            raise ValueError(f"SimulationRequest.mode must be 'page' or 'feed', got {batch.mode!r}.")
        U = np.empty((n, 4 * k + 1))
        for row, rng in zip(U, rngs):
            rng.random(out=row)
        return self._answer(batch, U)

    def _answer(self, batch: RequestBatch, U: np.ndarray) -> ResponseBatch:
        """Answers of ``batch`` given each row's ``4 K + 1`` uniforms ``U`` (``_answer_kernel``)."""
        hist, ratio, skipped = (np.ascontiguousarray(a) for a in self._memory(batch))
        feats, ds = self.features, self.dataset
        index, value = feats.sparse_text
        prof, user_ratio = profile_sums(hist.astype(np.int64, copy=False), skipped.astype(bool, copy=False),
                                        ratio.astype(np.float64, copy=False), self.decay, index, value, feats.text.shape[1])
        proxy = ds.watch_ratio_source == "rating proxy" and ds.rating_range is not None
        lo, hi = ds.rating_range if proxy else (0.0, 0.0)
        page = batch.mode == "page"
        _, played, clicked, skip, watch, rating, probs = _answer_kernel(
            hist, skipped, self.decay, prof, user_ratio, np.ascontiguousarray(batch.slate, np.int64),
            np.ascontiguousarray(batch.repeated, np.bool_), U, page, index, value, feats.popularity, feats.mean_rating,
            feats.mean_watch_ratio, self._co_matrix, self.choice_weights, self.b_none, self._watch_matrix,
            *self._bins, ds.thresholds.skip_below, self.config.slip, float(lo), float(hi - lo), self._prior_ratio,
        )
        n = len(batch)
        return ResponseBatch(
            played=played, clicked=clicked, skipped=skip, watch_ratio=watch, rating=rating, leave=np.zeros(n, bool),
            errors=np.zeros(n, np.int64), choice_probs=probs if page else None, skip_probs=None if page else probs,
        )


FIT_CACHE_KEEP = 8  # most recent fits kept in $RECSIM_CACHE/fitted (~11 MB each on ml-100k)


def fit_cache_path(dataset: Dataset, config: FittedUserModelConfig) -> Path:
    """Where a fit is stored on disk: keyed by the dataset's content, the config and the source of the fitting code
    (this module and ``recsim_env.features``), so a changed dataset, config or fitting code never reads a stale fit."""
    import recsim_env.features as features_module

    h = hashlib.sha256()
    for part in (dataset.fingerprint(), repr(config), Path(__file__).read_bytes(), Path(features_module.__file__).read_bytes()):
        h.update(part if isinstance(part, bytes) else part.encode())
    return cache_dir() / "fitted" / f"{dataset.name}-{h.hexdigest()[:24]}.npz"


def _save_fit(model: FittedUserModel, path: Path) -> None:
    arrays = {"choice_weights": model.choice_weights, "bin_low": model.bin_low, "bin_high": model.bin_high,
              "meta": np.array(json.dumps({"decay": model.decay, "b_none": model.b_none, "fit_report": model.fit_report}))}
    if model.watch_weights is not None:
        arrays["watch_weights"] = model.watch_weights
    if model.co_occurrence is not None:
        arrays |= {"co_counts": model.co_occurrence.counts, "co_users": model.co_occurrence.users}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")  # per process: parallel workers may fit at once
    np.savez(tmp, **arrays)
    os.replace(tmp, path)  # atomic: a half-written fit is never read
    fits = [f for f in path.parent.glob("*.npz") if not f.name.endswith(".tmp.npz")]  # not another process's write
    for f in sorted(fits, key=lambda f: f.stat().st_mtime)[:-FIT_CACHE_KEEP]:  # edited datasets, older fitting code
        f.unlink(missing_ok=True)


def _load_fit(dataset: Dataset, config: FittedUserModelConfig, path: Path) -> FittedUserModel:
    with np.load(path) as z:
        meta = json.loads(str(z["meta"]))
        cooc = CoOccurrence(z["co_counts"], z["co_users"], config.co_window) if "co_counts" in z else None
        watch = z["watch_weights"] if "watch_weights" in z else None
        report = meta["fit_report"]
        report["decays"] = {float(k): v for k, v in report.get("decays", {}).items()}
        return FittedUserModel(dataset, config, meta["decay"], z["choice_weights"], meta["b_none"], watch,
                               z["bin_low"], z["bin_high"], report, cooc)


@functools.lru_cache(maxsize=8)
def _fit_cached(dataset: Dataset, config: FittedUserModelConfig) -> FittedUserModel:
    """Fitted once per (dataset, config) per process, and once per machine on disk (``$RECSIM_CACHE/fitted``)."""
    path = fit_cache_path(dataset, config)
    if path.is_file():
        try:
            return _load_fit(dataset, config, path)
        except (OSError, ValueError, KeyError) as err:  # unreadable: refit and overwrite
            warnings.warn(f"Refitting: the cached fit {path} could not be read ({err}).", stacklevel=3)
    model = FittedUserModel._fit(dataset, config)
    try:
        _save_fit(model, path)
    except OSError as err:  # a read-only cache only costs the next process a refit
        warnings.warn(f"The fitted user model could not be cached at {path} ({err}).", stacklevel=3)
    return model
