"""``RecSimVectorEnv``: N sessions stepped together with ONE simulator call per vector step.

Created by ``gym.make_vec("RecSimEnv-v0", num_envs=N, vectorization_mode="vector_entry_point")``.
Each sub-env keeps its own ``np_random`` Generator, seeded like Gymnasium's sync vector env
(``reset(seed=s)`` seeds sub-env i with ``s + i``), so a vector env gives exactly the trajectories
of N single envs run with the same seeds and actions. Autoreset follows Gymnasium's default
``NEXT_STEP`` mode: the step after a sub-env ends resets it and ignores its action.

Infos are batched: ``info["feedback"][key]`` is an (N, K) array (item_id, position, clicked,
skipped, played, watch_ratio, rating, reason_class, reason_text), ``info["reward_terms"][term]``
is (N,), and ``info["_feedback"]`` marks the sub-envs that stepped (not reset) this call.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from recsim_env.core import EnvConfig, SessionBatch
from recsim_env.rewards import REWARD_TERMS

__all__ = ["RecSimVectorEnv"]


class RecSimVectorEnv(VectorEnv):
    """N RecSimEnv sessions in one batch (see the module docstring and ``RecSimEnv``)."""

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": []}

    def __init__(self, num_envs: int = 1, **kwargs: Any) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}.")
        kwargs.pop("render_mode", None)
        self.num_envs = num_envs
        self.config = EnvConfig.from_kwargs(kwargs)
        self.batch = SessionBatch(self.config, num_envs)
        self.dataset = self.batch.dataset
        self.simulator = self.batch.simulator
        self.single_observation_space = self.batch.observation_space
        self.single_action_space = self.batch.action_space
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self._rngs: list[np.random.Generator | None] = [None] * num_envs
        self._rows = np.arange(num_envs)
        self._autoreset = np.zeros(num_envs, dtype=bool)
        self._started = False

    def reset(
        self, *, seed: int | list[int | None] | None = None, options: dict | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        if seed is None:
            seeds: list[int | None] = [None] * self.num_envs
        elif isinstance(seed, (int, np.integer)):
            seeds = [int(seed) + i for i in range(self.num_envs)]
        else:
            seeds = list(seed)
            if len(seeds) != self.num_envs:
                raise ValueError(f"reset(seed=list) needs {self.num_envs} seeds, got {len(seeds)}.")
        for i, s in enumerate(seeds):
            if s is not None or self._rngs[i] is None:
                self._rngs[i], _ = seeding.np_random(s)
        self.batch.reset_rows(self._rows, self._rngs)
        self._autoreset[:] = False
        self._started = True
        return self.batch.observe(self._rows), self._reset_info()

    def _reset_info(self) -> dict[str, Any]:
        return {"user": self.batch.user.copy(), "patience": self.batch.patience.copy()}

    def step(
        self, actions: Any
    ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        if not self._started:
            raise RuntimeError("Call envs.reset() before envs.step().")
        slates = self.batch.validate(actions, (self.num_envs,))
        n, K = self.num_envs, self.config.slate_size
        reset_rows = np.flatnonzero(self._autoreset)
        step_rows = np.flatnonzero(~self._autoreset)
        if len(reset_rows):
            self.batch.reset_rows(reset_rows, [self._rngs[i] for i in reset_rows])

        rewards = np.zeros(n)
        terminated = np.zeros(n, bool)
        truncated = np.zeros(n, bool)
        feedback = {
            "item_id": np.full((n, K), -1, np.int64),
            "position": np.broadcast_to(np.arange(K), (n, K)).copy(),
            "clicked": np.zeros((n, K), bool),
            "skipped": np.zeros((n, K), bool),
            "played": np.zeros((n, K), bool),
            "watch_ratio": np.full((n, K), np.nan),
            "rating": np.full((n, K), np.nan),
            "reason_class": np.empty((n, K), dtype=object),
            "reason_text": np.empty((n, K), dtype=object),
        }
        terms = np.zeros((n, len(REWARD_TERMS)))
        errors = np.zeros(n, np.int64)
        parts = []  # (rows, observations of those rows)
        if len(step_rows):
            out = self.batch.step_rows(step_rows, slates[step_rows], [self._rngs[i] for i in step_rows])
            rewards[step_rows] = out.reward
            terminated[step_rows] = out.terminated
            truncated[step_rows] = out.truncated
            for key, arr in out.feedback.items():
                feedback[key][step_rows] = arr
            terms[step_rows] = out.terms
            errors[step_rows] = out.errors
            parts.append((step_rows, out.obs))
        if len(reset_rows):
            parts.append((reset_rows, self.batch.observe(reset_rows)))
        if len(parts) == 1:
            obs = parts[0][1]
        else:
            obs = {k: np.empty((n,) + v.shape[1:], v.dtype) for k, v in parts[0][1].items()}
            for rows, part in parts:
                for key in obs:
                    obs[key][rows] = part[key]
        self._autoreset = terminated | truncated
        stepped = np.zeros(n, bool)
        stepped[step_rows] = True
        info = {
            "feedback": feedback,
            "_feedback": stepped,
            "reward_terms": dict(zip(REWARD_TERMS, terms.T.copy())),
            "_reward_terms": stepped,
            "user": self.batch.user.copy(),
            "patience": self.batch.patience.copy(),
            "simulator_errors": errors,
        }
        return obs, rewards, terminated, truncated, info
