"""``RecSimVectorEnv``: N sessions stepped together with ONE simulator call per vector step.

Created by ``gym.make_vec("RecSimEnv-v0", num_envs=N, vectorization_mode="vector_entry_point")``.
Each sub-env keeps its own ``np_random`` Generator, seeded like Gymnasium's sync vector env
(``reset(seed=s)`` seeds sub-env i with ``s + i``), so a vector env gives exactly the trajectories
of N single envs run with the same seeds and actions.

Autoreset (``autoreset_mode=``, Gymnasium's :class:`~gymnasium.vector.AutoresetMode` or its name):
``NEXT_STEP`` (default, Gymnasium's default): the step after a sub-env ends resets it and ignores its
action; ``SAME_STEP``: an ending sub-env is reset within the same step, its last observation in
``info["final_obs"]`` (object array, ``info["_final_obs"]`` marks them); ``DISABLED``: ended sub-envs
must be reset with ``reset(options={"reset_mask": mask})`` (a bool array of shape (N,), as Gymnasium's
vector envs take it), and stepping one before that raises ``RuntimeError``. ``reset_mask`` works in
every mode; any other reset option raises ``ValueError``. Rendering is not supported (``render_mode``
other than None raises).

Infos are batched and have the same keys at reset and at step: ``info["feedback"][key]`` is an (N, K)
array (the layout of a single env's ``info["feedback"]``, ``recsim_env.core.empty_feedback``: -1, False
or "" where nothing was shown, no NaN), ``info["reward_terms"][term]`` is (N,) (NaN where the
sub-env did not step), ``info["_feedback"]`` marks the sub-envs that stepped (not reset) this call;
``user_index`` and ``simulator_errors`` are (N,) (patience and step are in the observation).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from recsim_env.core import EnvConfig, SessionBatch, empty_feedback
from recsim_env.rewards import REWARD_TERMS
from recsim_env.validation import check_int

__all__ = ["RecSimVectorEnv"]

MAX_NUM_ENVS = 100_000  # refused above this before anything is allocated


class RecSimVectorEnv(VectorEnv):
    """N RecSimEnv sessions in one batch (see the module docstring and ``RecSimEnv``)."""

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": [], "render_fps": 4}

    def __init__(self, num_envs: int = 1, autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
                 render_mode: str | None = None, **kwargs: Any) -> None:
        self.num_envs = check_int("num_envs", num_envs, 1, MAX_NUM_ENVS)
        if render_mode is not None:
            raise ValueError(f"RecSimVectorEnv does not render (render_mode must be None, got {render_mode!r}); "
                             f"render a single RecSimEnv(render_mode='ansi') instead.")
        self.render_mode = None
        try:
            self.autoreset_mode = AutoresetMode(autoreset_mode) if not isinstance(autoreset_mode, str) else AutoresetMode[autoreset_mode.upper()]
        except (KeyError, ValueError):
            raise ValueError(f"autoreset_mode must be one of {[m.name for m in AutoresetMode]}, got {autoreset_mode!r}.") from None
        self.metadata = {**type(self).metadata, "autoreset_mode": self.autoreset_mode}
        self.config = EnvConfig.from_kwargs(kwargs, "RecSimVectorEnv")
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
        options = dict(options or {})
        mask = options.pop("reset_mask", None)
        if options:
            raise ValueError(f"RecSimVectorEnv.reset understands only options={{'reset_mask': mask}}, got {sorted(options)}.")
        if mask is None:
            mask = np.ones(self.num_envs, dtype=bool)
        elif not (isinstance(mask, np.ndarray) and mask.dtype == np.bool_ and mask.shape == (self.num_envs,) and mask.any()):
            raise ValueError(f"options['reset_mask'] must be a numpy bool array of shape ({self.num_envs},) with at least "
                             f"one True, got {type(mask).__name__} {getattr(mask, 'dtype', '')} {np.shape(mask)}.")
        elif not self._started and not mask.all():
            raise RuntimeError("The first reset must reset every sub-env: call envs.reset() without reset_mask first.")
        if seed is None:
            seeds: list[int | None] = [None] * self.num_envs
        elif isinstance(seed, (int, np.integer)):
            seeds = [int(seed) + i for i in range(self.num_envs)]
        else:
            seeds = list(seed)
            if len(seeds) != self.num_envs:
                raise ValueError(f"reset(seed=list) needs {self.num_envs} seeds, got {len(seeds)}.")
        rows = np.flatnonzero(mask)
        for i in rows:
            if seeds[i] is not None or self._rngs[i] is None:
                self._rngs[i], _ = seeding.np_random(seeds[i])
        self.batch.reset_rows(rows, [self._rngs[i] for i in rows])
        self._autoreset[rows] = False
        self._started = True
        return self.batch.observe(self._rows), self._info(None, np.zeros(self.num_envs, dtype=bool))

    def close_extras(self, **kwargs: Any) -> None:
        self.batch.close()

    def _info(self, out, stepped: np.ndarray) -> dict[str, Any]:
        """The batched info (module docstring); ``out`` is the StepOutput of the ``stepped`` rows (None at reset)."""
        n, K = self.num_envs, self.config.slate_size
        if out is not None and stepped.all():  # the step's own arrays, made for it
            feedback, terms, errors = out.feedback, out.terms, out.errors
        else:
            feedback = empty_feedback(n, K)
            terms = np.full((n, len(REWARD_TERMS)), np.nan)
            errors = np.zeros(n, np.int64)
            if out is not None:  # some rows only reset: theirs stay empty
                rows = np.flatnonzero(stepped)
                for key, arr in out.feedback.items():
                    feedback[key][rows] = arr
                terms[rows] = out.terms
                errors[rows] = out.errors
        return {
            "feedback": feedback, "_feedback": stepped.copy(),
            "reward_terms": dict(zip(REWARD_TERMS, np.ascontiguousarray(terms.T))), "_reward_terms": stepped.copy(),
            "user_index": self.batch.user.copy(), "simulator_errors": errors,
        }

    def step(
        self, actions: Any
    ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        if not self._started:
            raise RuntimeError("Call envs.reset() before envs.step().")
        slates = self.batch.validate(actions, (self.num_envs,))
        n = self.num_envs
        mode = self.autoreset_mode
        if mode == AutoresetMode.DISABLED and self._autoreset.any():
            raise RuntimeError(f"Sub-envs {np.flatnonzero(self._autoreset).tolist()} have ended and autoreset_mode is DISABLED: "
                               f"reset them with envs.reset(options={{'reset_mask': mask}}) before stepping.")
        reset_rows = np.flatnonzero(self._autoreset) if mode == AutoresetMode.NEXT_STEP else np.zeros(0, np.int64)
        stepped = np.ones(n, bool)
        stepped[reset_rows] = False
        step_rows = np.flatnonzero(stepped)
        if len(reset_rows):
            self.batch.reset_rows(reset_rows, [self._rngs[i] for i in reset_rows])

        rewards = np.zeros(n)
        terminated = np.zeros(n, bool)
        truncated = np.zeros(n, bool)
        out = None
        if len(step_rows):
            out = self.batch.step_rows(step_rows, slates[step_rows], [self._rngs[i] for i in step_rows])
            rewards[step_rows] = out.reward
            terminated[step_rows] = out.terminated
            truncated[step_rows] = out.truncated
        info = self._info(out, stepped)
        ended = terminated | truncated
        if mode == AutoresetMode.SAME_STEP and ended.any():
            final = np.full(n, None, dtype=object)
            for j, row in enumerate(step_rows):
                if ended[row]:
                    final[row] = {k: v[j].copy() for k, v in out.obs.items()}
            rows = np.flatnonzero(ended)
            self.batch.reset_rows(rows, [self._rngs[i] for i in rows])
            info["final_obs"], info["_final_obs"] = final, ended.copy()
            info["user_index"] = self.batch.user.copy()
            self._autoreset[:] = False
        else:
            self._autoreset = ended
        return self.batch.observe(self._rows), rewards, terminated, truncated, info
