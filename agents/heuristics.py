"""Heuristic recommender policies: random and most-popular."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from recsim_env.features import item_features

__all__ = ["PopularityPolicy", "RandomPolicy"]


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

    def act(self, observation: dict[str, np.ndarray], info: dict[str, Any]) -> np.ndarray:
        if self.candidates:
            return np.argsort(-self.count[observation["candidates"]], kind="stable")[: self.k]
        fresh = self.order[observation["consumed"][self.order] == 0]
        return fresh[: self.k]
