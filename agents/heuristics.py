"""Heuristic recommender policies: random, most popular, and content-based."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from recsim_env.features import item_features

__all__ = ["ContentPolicy", "LogReplayPolicy", "PopularityPolicy", "RandomPolicy"]


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


class PopularityPolicy:
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

    def act(self, observation: dict[str, np.ndarray], info: dict[str, Any]) -> np.ndarray:
        return self.rank(observation, info, self.k)


class ContentPolicy:
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
        profile = observation["profile"]
        if self.candidates:
            cand = observation["candidates"]
            score = self.text[cand] @ profile + self.tiebreak[cand]
            return np.argsort(-score, kind="stable")[:n]
        score = self.text @ profile + self.tiebreak
        score[observation["consumed"] == 1] = -np.inf
        return np.argsort(-score, kind="stable")[:n]

    def act(self, observation: dict[str, np.ndarray], info: dict[str, Any]) -> np.ndarray:
        return self.rank(observation, info, self.k)


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
