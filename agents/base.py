"""The recommender-policy protocol and the rollout helper used by the CLI, benchmarks and tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Union, runtime_checkable

import gymnasium as gym
import numpy as np
from tqdm.auto import tqdm

__all__ = ["EpisodeStats", "RecommenderPolicy", "RolloutResult", "as_policy", "rollout"]


@runtime_checkable
class RecommenderPolicy(Protocol):
    """Anything with ``act(observation, info) -> slate``; a plain function ``obs -> slate`` works too."""

    def act(self, observation: dict[str, np.ndarray], info: dict[str, Any]) -> np.ndarray:
        ...


PolicyLike = Union[RecommenderPolicy, Callable[[dict[str, np.ndarray]], Any]]


def as_policy(policy: PolicyLike) -> Callable[[dict, dict], Any]:
    """Normalise a policy object or a plain function to ``f(obs, info) -> slate``."""
    if callable(getattr(policy, "act", None)):
        return policy.act
    if callable(policy):
        return lambda obs, info: policy(obs)
    raise TypeError(
        f"A policy must have act(observation, info) or be a function obs -> slate; got {type(policy).__name__}."
    )


@dataclass
class EpisodeStats:
    """What one episode showed and how the user reacted (raw records for the metrics)."""

    ret: float = 0.0
    length: int = 0
    shown: int = 0
    played: int = 0
    clicks: int = 0
    skips: int = 0
    repeats: int = 0
    slates: list[list[int]] = field(default_factory=list)  # item ids shown, per step
    watch: list[float] = field(default_factory=list)  # watch ratios of played items with a known ratio

    def add(self, reward: float, info: dict) -> None:
        self.ret += reward
        self.length += 1
        self.slates.append([rec["item_id"] for rec in info["feedback"]])
        for rec in info["feedback"]:
            self.shown += 1
            self.clicks += rec["clicked"]
            if rec["skipped"] is not None:
                self.played += 1
                self.skips += rec["skipped"]
                if rec["watch_ratio"] is not None:
                    self.watch.append(rec["watch_ratio"])
        self.repeats += int(info["reward_terms"]["repeat"])


@dataclass
class RolloutResult:
    """Per-episode records; :meth:`metrics` summarises them (definitions in ``benchmarks.rollout``)."""

    episodes: list[EpisodeStats] = field(default_factory=list)
    features: object = None  # recsim_env.features.ItemFeatures of the env's dataset

    def metrics(self) -> dict[str, float]:
        from benchmarks.rollout import rollout_metrics

        return rollout_metrics(self.episodes, self.features)


def rollout(
    env: gym.Env, policy: PolicyLike, episodes: int = 10, seed: int = 0, progress: bool = True, desc: str = "rollout"
) -> RolloutResult:
    """Run ``episodes`` full episodes; episode e is reset with seed ``seed + e`` (reproducible)."""
    act = as_policy(policy)
    result = RolloutResult(features=env.unwrapped.batch.features)
    for ep in tqdm(range(episodes), desc=desc, disable=not progress, leave=False):
        obs, info = env.reset(seed=seed + ep)
        stats = EpisodeStats()
        done = False
        while not done:
            obs, reward, terminated, truncated, info = env.step(act(obs, info))
            stats.add(float(reward), info)
            done = terminated or truncated
        result.episodes.append(stats)
    return result
