"""Simulator re-ranking, the deployment mode of G-UBS and ENF.

A backbone proposes ``n_proposals`` items (its ``rank(observation, info, n)``, best first); the
user simulator predicts the user's reaction to each as if it played in the feed; items whose
predicted fast-skip probability exceeds ``skip_threshold`` are removed, and the backbone's top K of
the rest form the slate. If fewer than K survive, the slate is filled with the removed items that
are least likely to be skipped (so the action is always a full slate); ``last`` records what was
removed and why.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from simulators.base import SimulationRequest, UserSimulator

__all__ = ["RerankPolicy"]


class RerankPolicy:
    """``act`` = backbone proposals, minus the items the simulator predicts the user would skip."""

    def __init__(
        self, env: gym.Env, backbone, simulator: UserSimulator | None = None, n_proposals: int = 30,
        skip_threshold: float = 0.5, seed: int = 0,
    ) -> None:
        batch = env.unwrapped.batch
        if not callable(getattr(backbone, "rank", None)):
            raise TypeError(f"The backbone must have rank(observation, info, n); {type(backbone).__name__} has not.")
        self.k = batch.config.slate_size
        if n_proposals < self.k:
            raise ValueError(f"n_proposals ({n_proposals}) must be >= slate_size ({self.k}).")
        if not 0.0 <= skip_threshold <= 1.0:
            raise ValueError(f"skip_threshold must be in [0, 1], got {skip_threshold}.")
        self.backbone = backbone
        self.simulator = simulator or batch.simulator
        self.n = n_proposals
        self.threshold = skip_threshold
        self.candidates = batch.config.action_mode == "candidates"
        self.rng = np.random.default_rng(seed)  # the simulator samples too; only its probabilities are used
        self.last: dict[str, np.ndarray] = {}

    def request(self, observation: dict[str, np.ndarray], info: dict[str, Any], items: np.ndarray) -> SimulationRequest:
        """A feed-mode request for ``items`` from what the observation shows of the user's memory."""
        hist = observation["history_items"]
        valid = hist >= 0
        fb = observation["history_feedback"][valid]
        consumed = observation["consumed"][items] == 1 if "consumed" in observation else np.zeros(len(items), bool)
        return SimulationRequest(
            user=int(info["user_index"]), history_items=hist[valid], history_watch_ratio=fb[:, 2].astype(np.float64),
            history_skipped=fb[:, 1] > 0.5, slate=np.asarray(items), repeated=consumed, mode="feed",
            step=int(observation["step"][0]),
        )

    def act(self, observation: dict[str, np.ndarray], info: dict[str, Any]) -> np.ndarray:
        ranked = np.asarray(self.backbone.rank(observation, info, self.n))
        items = observation["candidates"][ranked] if self.candidates else ranked
        resp = self.simulator.respond([self.request(observation, info, items)], [self.rng])[0]
        if resp.skip_probs is None:
            raise ValueError(f"{type(self.simulator).__name__} gave no skip_probs for a feed request; it cannot re-rank.")
        p = np.asarray(resp.skip_probs, dtype=np.float64)
        keep = p <= self.threshold
        slate = ranked[keep][: self.k]
        if len(slate) < self.k:
            removed = np.flatnonzero(~keep)
            fill = removed[np.argsort(p[removed], kind="stable")][: self.k - len(slate)]
            slate = np.concatenate([slate, ranked[fill]])
        self.last = {"proposed": ranked, "skip_probs": p, "removed": ranked[~keep]}
        return slate
