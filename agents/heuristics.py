"""Heuristic recommender policies: random, most popular, and content-based."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from recsim_env.features import item_features

__all__ = ["ContentPolicy", "LogReplayPolicy", "PopularityPolicy", "RandomPolicy", "SoftmaxPolicy"]


def _core(env: gym.Env):
    return env.unwrapped.batch


class RandomPolicy:
    """K distinct items (or candidates) drawn uniformly."""

    def __init__(self, env: gym.Env, seed: int = 0) -> None:
        self.high = int(env.action_space.nvec[0])
        self.k = len(env.action_space.nvec)
        self.rng = np.random.default_rng(seed)

    def act(self, observation: dict[str, np.ndarray], info: dict[str, Any]) -> np.ndarray:
        return self.rng.choice(self.high, self.k, replace=False)

    def log_propensity(self, observation: dict[str, np.ndarray], info: dict[str, Any], slate: np.ndarray) -> float:
        """Every ordered slate of distinct actions has probability 1 / (high (high - 1) ... (high - K + 1))."""
        slate = np.asarray(slate)
        if len(np.unique(slate)) < len(slate):
            return float("-inf")
        return -float(np.log(self.high - np.arange(self.k)).sum())


class _TopK:
    """A deterministic policy that shows the first K of its ``rank``."""

    k: int

    def rank(self, observation: dict[str, np.ndarray], info: dict[str, Any], n: int) -> np.ndarray:
        raise NotImplementedError

    def act(self, observation: dict[str, np.ndarray], info: dict[str, Any]) -> np.ndarray:
        return self.rank(observation, info, self.k)

    def log_propensity(self, observation: dict[str, np.ndarray], info: dict[str, Any], slate: np.ndarray) -> float:
        """Deterministic: log 1 for its own slate, -inf for any other."""
        return 0.0 if np.array_equal(self.act(observation, info), np.asarray(slate)) else float("-inf")


class PopularityPolicy(_TopK):
    """The K most popular train items the user has not consumed (catalog mode), or the K most
    popular candidates (candidates mode)."""

    def __init__(self, env: gym.Env) -> None:
        batch = _core(env)
        self.k = batch.config.slate_size
        self.candidates = batch.config.action_mode == "candidates"
        self.order = np.argsort(-item_features(batch.dataset).count, kind="stable")
        self.count = item_features(batch.dataset).count

    def rank(self, observation: dict[str, np.ndarray], info: dict[str, Any], n: int) -> np.ndarray:
        """The ``n`` best actions (item or candidate indices), best first."""
        if self.candidates:
            return np.argsort(-self.count[observation["candidates"]], kind="stable")[:n]
        return self.order[observation["consumed"][self.order] == 0][:n]

    def scores(self, observation: dict[str, np.ndarray], info: dict[str, Any]) -> np.ndarray:
        """A score per action: log(1 + train count); consumed items -inf (catalog mode)."""
        if self.candidates:
            return np.log1p(self.count[observation["candidates"]]).astype(np.float64)
        return np.where(observation["consumed"] == 1, -np.inf, np.log1p(self.count))


class ContentPolicy(_TopK):
    """Items nearest to the user's taste: cosine between each item's text/genre vector and the
    observation's ``profile`` (recency-weighted mean of watched memory items), ties broken by
    popularity. Catalog mode skips consumed items; candidates mode ranks the candidates."""

    def __init__(self, env: gym.Env) -> None:
        batch = _core(env)
        feats = item_features(batch.dataset)
        self.k = batch.config.slate_size
        self.candidates = batch.config.action_mode == "candidates"
        self.text = feats.text
        self.tiebreak = 1e-6 * feats.popularity

    def rank(self, observation: dict[str, np.ndarray], info: dict[str, Any], n: int) -> np.ndarray:
        """The ``n`` best actions (item or candidate indices), best first."""
        return np.argsort(-self.scores(observation, info), kind="stable")[:n]

    def scores(self, observation: dict[str, np.ndarray], info: dict[str, Any]) -> np.ndarray:
        """A score per action: cosine of the item with the profile (+ a popularity tie-break); consumed -inf (catalog)."""
        profile = observation["profile"]
        if self.candidates:
            cand = observation["candidates"]
            return (self.text[cand] @ profile + self.tiebreak[cand]).astype(np.float64)
        score = (self.text @ profile + self.tiebreak).astype(np.float64)
        score[observation["consumed"] == 1] = -np.inf
        return score


class LogReplayPolicy:
    """The user's own logged future: the first K items of its real log (time order) that it has not consumed yet,
    topped up with the most popular items once the log runs out. On an episode started at a real cut of the user's
    history (``reset(options={"user_index": u, "history_cut": c})``) this replays what the user really did next:
    the policy that `benchmarks/sessions.py` compares real and simulated session lengths under. Catalog mode only."""

    def __init__(self, env: gym.Env) -> None:
        batch = _core(env)
        if batch.config.action_mode != "catalog":
            raise ValueError("LogReplayPolicy shows logged items by their catalogue index: use action_mode='catalog'.")
        self.k = batch.config.slate_size
        self.dataset = batch.dataset
        self.popular = PopularityPolicy(env)

    def act(self, observation: dict[str, np.ndarray], info: dict[str, Any]) -> np.ndarray:
        ds = self.dataset
        log = ds.inter_item[ds.history(int(info["user_index"]))]
        fresh = log[observation["consumed"][log] == 0][: self.k]
        if len(fresh) == self.k:
            return fresh
        consumed = observation["consumed"].copy()
        consumed[fresh] = 1
        return np.concatenate([fresh, self.popular.rank({**observation, "consumed": consumed}, info, self.k - len(fresh))])


class SoftmaxPolicy:
    """A stochastic policy that knows its propensities: the slate is drawn position by position without replacement,
    each pick from ``(1 - epsilon) * softmax(scores / temperature) + epsilon * uniform`` over the actions not yet picked
    (and, in catalog mode, not consumed); ``scorer`` is any policy with ``scores(obs, info)`` (``PopularityPolicy``,
    ``ContentPolicy``). ``log_propensity(obs, info, slate)`` is the log-probability of an ordered slate under this
    policy, what off-policy estimators (IPS, SNIPS) need of a logging and of a target policy."""

    def __init__(self, env: gym.Env, scorer: Any, temperature: float = 1.0, epsilon: float = 0.0, seed: int = 0) -> None:
        if not callable(getattr(scorer, "scores", None)):
            raise TypeError(f"scorer must have scores(observation, info) (e.g. PopularityPolicy), got {type(scorer).__name__}.")
        if not temperature > 0 or not 0 <= epsilon <= 1:
            raise ValueError(f"SoftmaxPolicy needs temperature > 0 and 0 <= epsilon <= 1, got {temperature}, {epsilon}.")
        self.k = len(env.action_space.nvec)
        self.scorer, self.temperature, self.epsilon = scorer, float(temperature), float(epsilon)
        self.rng = np.random.default_rng(seed)

    def _step_probs(self, scores: np.ndarray, allowed: np.ndarray) -> np.ndarray:
        z = np.where(allowed, scores / self.temperature, -np.inf)
        finite = allowed & np.isfinite(z)
        if not finite.any():  # only -inf scores left: uniform over what is allowed
            return allowed / allowed.sum()
        soft = np.where(finite, np.exp(z - z[finite].max()), 0.0)
        return (1 - self.epsilon) * soft / soft.sum() + self.epsilon * allowed / allowed.sum()

    def act(self, observation: dict[str, np.ndarray], info: dict[str, Any]) -> np.ndarray:
        scores = self.scorer.scores(observation, info)
        allowed = np.isfinite(scores) if np.isfinite(scores).sum() >= self.k else np.ones(len(scores), bool)
        slate = []
        for _ in range(self.k):
            p = self._step_probs(scores, allowed)
            a = int(self.rng.choice(len(p), p=p))
            slate.append(a)
            allowed[a] = False
        return np.array(slate)

    def log_propensity(self, observation: dict[str, np.ndarray], info: dict[str, Any], slate: np.ndarray) -> float:
        scores = self.scorer.scores(observation, info)
        allowed = np.isfinite(scores) if np.isfinite(scores).sum() >= self.k else np.ones(len(scores), bool)
        logp = 0.0
        for a in np.asarray(slate).tolist():
            p = self._step_probs(scores, allowed)
            if p[a] <= 0:
                return float("-inf")
            logp += float(np.log(p[a]))
            allowed[a] = False
        return logp
