"""The recommender-policy protocol: what ``rollout`` (``agents.rollout``) and the CLI accept as a policy."""

from __future__ import annotations

from typing import Any, Callable, Protocol, Union, runtime_checkable

import numpy as np

__all__ = ["PolicyLike", "RecommenderPolicy", "as_policy"]


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
