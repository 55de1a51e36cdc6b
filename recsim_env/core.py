"""The batched state and step logic shared by :class:`RecSimEnv` (N = 1) and the vector env.

Every array has one row per session (sub-environment). A step validates the slates, builds one
:class:`~simulators.base.SimulationRequest` per row, makes ONE simulator call for all rows, turns
the answers into reward terms, updates memory and patience, and builds the observations.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from typing import Any, Literal, Sequence

import numpy as np
from gymnasium import spaces

from recsim_env.candidates import CandidateGenerator, MixedCandidates
from recsim_env.data import Dataset, load_dataset
from recsim_env.features import item_features, user_features
from recsim_env.kernels import history_feedback, leave_draws, profile_sums, remember, reset_memory, reward_terms_kernel, slate_repeats
from recsim_env.rewards import REWARD_TERMS, RewardWeights
from recsim_env.sessions import MIN_HAZARD, LeaveModel, fitted_leave_model
from recsim_env.validation import check_int, check_real, coerce_fields
from simulators.base import RequestBatch, UserSimulator, respond_batch

__all__ = ["EnvConfig", "SessionBatch", "StepOutput", "UserDynamics", "empty_feedback", "make_simulator"]

ActionMode = Literal["catalog", "candidates"]
MAX_OBS_RATIO = 10.0  # watch ratios (rewatches) are clipped to this in observations


@dataclass(frozen=True)
class UserDynamics:
    """Patience: starts at ``initial``, capped at ``maximum``; the user leaves when it reaches 0.

    Each step it falls by ``skip_cost`` per fast skip and by ``empty_page_cost`` when nothing on the
    page was clicked (page mode) or everything was skipped (feed mode), and rises by ``like_gain``
    per liked item.
    """

    initial: float = 5.0
    maximum: float = 10.0
    skip_cost: float = 0.25
    empty_page_cost: float = 1.0
    like_gain: float = 0.5

    def __post_init__(self) -> None:
        for f in fields(self):
            check_real(f"dynamics.{f.name}", getattr(self, f.name), low=0.0)
        if not 0 < self.initial <= self.maximum:
            raise ValueError(f"UserDynamics needs 0 < initial <= maximum, got initial={self.initial}, maximum={self.maximum}.")


# Absurd sizes are refused before anything is allocated (an array of this length per session).
MAX_MEMORY_SIZE = 10_000


@dataclass
class EnvConfig:
    """Arguments of ``RecSimEnv`` / ``RecSimVectorEnv`` (see the RecSimEnv docstring)."""

    dataset: str | Dataset = "ml-100k"
    simulator: str | UserSimulator = "fitted"
    simulator_kwargs: dict | None = None
    feedback_mode: Literal["page", "feed"] = "feed"
    action_mode: ActionMode = "catalog"
    slate_size: int = 10
    num_candidates: int = 50
    candidate_generator: CandidateGenerator | None = None
    user_split: str = "train"
    memory_size: int = 30
    min_history: int = 5
    reward_weights: RewardWeights | dict | None = None
    dynamics: UserDynamics | dict | None = None
    max_episode_steps: int | None = None
    profile_decay: float = 0.9
    session_end: str | LeaveModel = "patience"

    def __post_init__(self) -> None:
        if not isinstance(self.dataset, (str, os.PathLike, Dataset)):
            raise TypeError(f"dataset must be a name ('ml-100k'), a directory of RecBole atomic files or a Dataset, "
                            f"got {type(self.dataset).__name__} {self.dataset!r}.")
        if self.simulator_kwargs is not None and not isinstance(self.simulator_kwargs, dict):
            raise TypeError(f"simulator_kwargs must be a dict or None, got {type(self.simulator_kwargs).__name__} {self.simulator_kwargs!r}.")
        for name, allowed in (("feedback_mode", ("page", "feed")), ("action_mode", ("catalog", "candidates"))):
            if not isinstance(getattr(self, name), str) or getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}.")
        if not isinstance(self.user_split, str) or self.user_split not in ("train", "valid", "test", "all"):
            raise ValueError(f"user_split must be one of ('train', 'valid', 'test', 'all'), got {self.user_split!r}.")
        self.slate_size = check_int("slate_size", self.slate_size, 1)
        self.num_candidates = check_int("num_candidates", self.num_candidates, 1)
        if self.action_mode == "candidates" and self.num_candidates < self.slate_size:
            raise ValueError(
                f"num_candidates ({self.num_candidates}) must be >= slate_size ({self.slate_size}) in candidates mode."
            )
        self.memory_size = check_int("memory_size", self.memory_size, 1, MAX_MEMORY_SIZE)
        self.min_history = check_int("min_history", self.min_history, 1)
        if self.max_episode_steps is not None:
            self.max_episode_steps = check_int("max_episode_steps", self.max_episode_steps, 1)
        self.profile_decay = check_real("profile_decay", self.profile_decay, 0.0, 1.0, low_open=True)
        if not (isinstance(self.session_end, LeaveModel) or self.session_end in ("patience", "fitted")):
            raise ValueError(f"session_end must be 'patience' (v0: patience spent), 'fitted' (v1: the leaving model fitted "
                             f"on the dataset's sessions) or a recsim_env.sessions.LeaveModel, got {self.session_end!r}.")
        self.reward_weights = coerce_fields(RewardWeights, self.reward_weights, "reward_weights")
        self.dynamics = coerce_fields(UserDynamics, self.dynamics, "dynamics")

    def check_sizes(self, dataset: Dataset) -> None:
        """Refuse slates and candidate lists longer than the catalogue (before any array is allocated)."""
        n = dataset.n_items
        if self.action_mode == "catalog" and self.slate_size > n:
            raise ValueError(f"slate_size={self.slate_size} exceeds the catalogue of {dataset.name!r} ({n} items).")
        if self.action_mode == "candidates" and self.num_candidates > n:
            raise ValueError(f"num_candidates={self.num_candidates} exceeds the catalogue of {dataset.name!r} ({n} items).")

    @classmethod
    def from_kwargs(cls, kwargs: dict[str, Any], owner: str = "RecSimEnv") -> "EnvConfig":
        """The config of ``owner(**kwargs)``; an unknown name raises Python's own TypeError wording (TorchRL's
        ``GymEnv`` probes arguments and relies on it), followed by the known names."""
        known = [f.name for f in fields(cls)]
        for name in kwargs:
            if name not in known:
                raise TypeError(f"{owner}.__init__() got an unexpected keyword argument {name!r}; "
                                f"known arguments: render_mode, {', '.join(known)}.")
        return cls(**kwargs)


_LLM_SIMULATORS: dict = {}  # (dataset id, kwargs) -> LLMUserSimulator: sub-envs of one process share one model


def make_simulator(spec: str | UserSimulator, dataset: Dataset, kwargs: dict | None = None) -> UserSimulator:
    """Resolve ``simulator=`` (a name or an object with ``respond``) to a simulator bound to ``dataset``."""
    kwargs = dict(kwargs or {})
    if isinstance(spec, str):
        if spec == "fitted":  # FittedUserModel.fit caches per (dataset, config)
            from simulators.fitted import FittedUserModel, FittedUserModelConfig

            return FittedUserModel.fit(dataset, FittedUserModelConfig.from_dict(kwargs) if kwargs else None)
        if spec == "llm":
            from simulators.llm import LLMUserSimulator
            from simulators.llm.models import default_simulator_kwargs

            kwargs = default_simulator_kwargs(kwargs, dataset.name)  # the heads / adapter trained here, where they apply
            key = (id(dataset), repr(sorted(kwargs.items())))
            if key not in _LLM_SIMULATORS:
                _LLM_SIMULATORS[key] = LLMUserSimulator(dataset=dataset, **kwargs)
            return _LLM_SIMULATORS[key]
        raise ValueError(
            f"Unknown simulator {spec!r}. Available: 'fitted' (data-fitted user model), 'llm' (language model, "
            f"see simulators.llm), or any object with a respond(requests, rngs) method (simulators.base.UserSimulator)."
        )
    if kwargs:
        raise ValueError("simulator_kwargs only apply to a simulator given by name ('fitted' or 'llm').")
    if not callable(getattr(spec, "respond", None)):
        raise TypeError(
            f"simulator must be a name or an object with respond(requests, rngs); got {type(spec).__name__}."
        )
    if callable(getattr(spec, "bind", None)):
        spec.bind(dataset)
    return spec


def empty_feedback(n: int, K: int) -> dict[str, np.ndarray]:
    """The per-item feedback arrays of ``info["feedback"]`` for ``n`` rows of ``K`` slots, with nothing shown:
    item_id -1, position 0..K-1, clicked / skipped / played / rated False, watch_ratio and rating -1, reasons "".

    No NaN and no None: Gymnasium's env checker compares infos with ``allclose`` (NaN != NaN) and Minari stores
    fixed-shape arrays; ``played`` and ``rated`` say where watch_ratio and rating mean something. Fresh arrays, copied
    from a kept template (this runs at every reset)."""
    template = _EMPTY_FEEDBACK.get((n, K))
    if template is None:
        template = _EMPTY_FEEDBACK[n, K] = {
            "item_id": np.full((n, K), -1, np.int64),
            "position": np.broadcast_to(np.arange(K, dtype=np.int64), (n, K)).copy(),
            "clicked": np.zeros((n, K), bool),
            "skipped": np.zeros((n, K), bool),
            "played": np.zeros((n, K), bool),
            "rated": np.zeros((n, K), bool),
            "watch_ratio": np.full((n, K), -1.0),
            "rating": np.full((n, K), -1.0),
            "reason_class": np.full((n, K), "", dtype=object),
            "reason_text": np.full((n, K), "", dtype=object),
        }
    return {k: v.copy() for k, v in template.items()}


_EMPTY_FEEDBACK: dict[tuple[int, int], dict[str, np.ndarray]] = {}


@dataclass
class StepOutput:
    """Batched result of one step for the rows that stepped."""

    obs: dict[str, np.ndarray]
    reward: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    feedback: dict[str, np.ndarray]  # item_id, position, clicked, skipped, played, watch_ratio, rating, reason_* -> (N, K)
    terms: np.ndarray  # (N, len(REWARD_TERMS))
    choice_probs: np.ndarray | None  # (N, K + 1) page mode, None where the simulator gives none
    skip_probs: np.ndarray | None  # (N, K) feed mode
    errors: np.ndarray
    users: np.ndarray


class SessionBatch:
    """State of N user sessions; rows are stepped and reset independently."""

    def __init__(self, config: EnvConfig, num_sessions: int) -> None:
        self.config = config
        self.dataset = config.dataset if isinstance(config.dataset, Dataset) else load_dataset(config.dataset)
        ds = self.dataset
        config.check_sizes(ds)
        self.simulator = make_simulator(config.simulator, ds, config.simulator_kwargs)
        self.features = item_features(ds)
        self.item_numeric = self.features.numeric
        self.user_feats = user_features(ds)
        lengths = np.diff(ds.user_ptr)
        pool = ds.users(config.user_split)
        self.user_pool = pool[lengths[pool] >= config.min_history]
        if len(self.user_pool) == 0:
            raise ValueError(
                f"No {config.user_split!r} user of {ds.name!r} has >= min_history={config.min_history} interactions."
            )
        self.candidates_gen = None
        if config.action_mode == "candidates":
            self.candidates_gen = config.candidate_generator or MixedCandidates(ds, config.num_candidates)
            if self.candidates_gen.num_candidates != config.num_candidates:
                raise ValueError(
                    f"candidate_generator.num_candidates={self.candidates_gen.num_candidates} differs from "
                    f"num_candidates={config.num_candidates}."
                )
        self.n = num_sessions
        n, H = num_sessions, config.memory_size
        self.user = np.zeros(n, dtype=np.int64)
        self.hist = np.full((n, H), -1, dtype=np.int64)
        self.hist_ratio = np.full((n, H), np.nan)
        self.hist_skipped = np.zeros((n, H), dtype=bool)
        self.hist_time = np.full((n, H), np.nan)
        self.hist_count = np.zeros(n, dtype=np.int64)  # items the memory ever held (the buffer keeps the last H)
        self.consumed = np.zeros((n, ds.n_items), dtype=bool)
        self.patience = np.zeros(n)
        self.steps = np.zeros(n, dtype=np.int64)
        self.session_items = np.zeros(n, dtype=np.int64)  # interactions in this episode (the leaving model's position)
        self.leave_model = None
        if config.session_end == "fitted":
            self.leave_model = fitted_leave_model(ds)
        elif isinstance(config.session_end, LeaveModel):
            self.leave_model = config.session_end
        self.candidates = np.zeros((n, config.num_candidates), dtype=np.int64)
        self._slots = np.arange(config.slate_size, dtype=np.int64)
        self._blank: dict[int, np.ndarray] = {}
        self._text_dim = self.features.text.shape[1]
        self.weights = config.reward_weights.as_array()
        self.observation_space = self._observation_space()
        K = config.slate_size
        high = config.num_candidates if config.action_mode == "candidates" else ds.n_items
        self.action_space = spaces.MultiDiscrete(np.full(K, high, dtype=np.int64))

    # -------------------------------------------------------------------------------- spaces
    def _observation_space(self) -> spaces.Dict:
        c, ds = self.config, self.dataset
        H = c.memory_size
        d = self.features.text.shape[1]
        obs = {
            "user": spaces.Box(0.0, 1.0, (self.user_feats.shape[1],), np.float32),
            "history_items": spaces.Box(-1, ds.n_items - 1, (H,), np.int64),
            "history_feedback": spaces.Box(0.0, MAX_OBS_RATIO, (H, 3), np.float32),
            "profile": spaces.Box(-1.0, 1.0, (d,), np.float32),
            "patience": spaces.Box(0.0, c.dynamics.maximum, (1,), np.float32),
            "step": spaces.Box(0.0, 1e6, (1,), np.float32),
        }
        if c.action_mode == "catalog":
            obs["consumed"] = spaces.MultiBinary(ds.n_items)
        else:
            M = c.num_candidates
            obs["candidates"] = spaces.Box(0, ds.n_items - 1, (M,), np.int64)
            obs["candidate_features"] = spaces.Box(0.0, MAX_OBS_RATIO, (M, self.item_numeric.shape[1]), np.float32)
        return spaces.Dict(obs)

    # ------------------------------------------------------------------------------- actions
    def validate(self, slates: Any, batch_shape: tuple[int, ...]) -> np.ndarray:
        """Check shape, integrality and range; return an int64 array of shape batch_shape + (K,)."""
        K = self.config.slate_size
        high = int(self.action_space.nvec[0])
        what = "candidate indices in [0, num_candidates)" if self.config.action_mode == "candidates" else "item indices in [0, n_items)"
        expected = batch_shape + (K,)
        if isinstance(slates, np.ma.MaskedArray):
            if np.ma.getmaskarray(slates).any():
                raise ValueError("Action is a masked array with masked entries: a slate needs every position. "
                                 "Fill them (arr.filled(...)) or pass a plain array.")
            slates = slates.data
        try:
            arr = np.asarray(slates)
        except ValueError:  # ragged nesting
            arr = None
        if arr is None or arr.dtype == object:
            raise ValueError(
                f"Action must be a rectangular array of shape {expected} ({K} {what}), got a ragged or non-numeric "
                f"{type(slates).__name__}. Use env.action_space.sample() to see a valid action."
            )
        if arr.shape != expected:
            raise ValueError(
                f"Action has shape {arr.shape}, expected {expected}: {'one slate per sub-env of ' if batch_shape else ''}"
                f"{K} {what} (slate_size={K}). Use env.action_space.sample() to see a valid action."
            )
        if arr.dtype.kind not in "iuf":
            raise ValueError(f"Action must hold integers ({what}), got dtype {arr.dtype}.")
        if arr.size and (arr.min() < 0 or arr.max() >= high):  # compared before any cast: 1e20 must not wrap around
            bad = arr[(arr < 0) | (arr >= high)].ravel()[0]
            raise ValueError(f"Action index {bad} is out of range: expected {what}, i.e. 0 <= index < {high}.")
        if arr.dtype.kind == "f":
            if not (np.all(np.isfinite(arr)) and np.all(arr == np.round(arr))):
                raise ValueError(f"Action must hold integers ({what}), got non-integral values of dtype {arr.dtype}.")
            arr = arr.astype(np.int64)
        return arr.astype(np.int64, copy=False)

    def close(self) -> None:
        """Release what a simulator made by name keeps between steps (e.g. the LLM user's kept contexts); a simulator
        object passed in is its owner's and is left as it is."""
        if isinstance(self.config.simulator, str) and hasattr(self.simulator, "close"):
            self.simulator.close()

    # --------------------------------------------------------------------------------- reset
    def reset_rows(self, rows: np.ndarray, rngs: Sequence[np.random.Generator], user: int | None = None,
                   cut: int | None = None) -> None:
        """Start new sessions: a user from the pool, memory from a random cut of its real history (``user`` / ``cut``
        given: that user, its first ``cut`` interactions; checked by :meth:`check_start`)."""
        ds = self.dataset
        rows = np.asarray(rows, dtype=np.int64)
        users = np.empty(len(rows), np.int64)
        cuts = np.empty(len(rows), np.int64)
        for i, rng in enumerate(rngs):  # each row's draws from its own generator, in this order
            u = int(self.user_pool[rng.integers(len(self.user_pool))]) if user is None else user
            users[i] = u
            cuts[i] = int(rng.integers(self.config.min_history, ds.user_ptr[u + 1] - ds.user_ptr[u] + 1)) if cut is None else cut
        self.user[rows] = users
        reset_memory(rows, users, cuts, ds.user_ptr, ds.inter_item, ds.inter_watch_ratio, ds.inter_time,
                     float(ds.thresholds.skip_below), self.hist, self.hist_ratio, self.hist_skipped, self.hist_time,
                     self.hist_count, self.consumed)
        self.patience[rows] = self.config.dynamics.initial
        self.steps[rows] = 0
        self.session_items[rows] = 0
        if self.candidates_gen is not None:
            self._refresh_candidates(rows, rngs)

    def check_start(self, user: Any, cut: Any) -> tuple[int, int | None]:
        """Validate ``reset(options={"user_index": u, "history_cut": c})``: any user of the dataset (not only the pool
        of ``user_split``) with at least one interaction, 1 <= cut <= its history length (None: drawn as usual)."""
        ds = self.dataset
        u = check_int("options['user_index']", user, 0, ds.n_users - 1)
        n_hist = int(ds.user_ptr[u + 1] - ds.user_ptr[u])
        if n_hist == 0:
            raise ValueError(f"User index {u} has no interactions in {ds.name!r}: its memory would be empty.")
        if cut is None:
            if n_hist < self.config.min_history:
                raise ValueError(f"User index {u} has {n_hist} interactions < min_history={self.config.min_history}: "
                                 f"pass options['history_cut'] (1..{n_hist}) or lower min_history.")
            return u, None
        return u, check_int("options['history_cut']", cut, 1, n_hist)

    def _refresh_candidates(self, rows: np.ndarray, rngs: Sequence[np.random.Generator]) -> None:
        if len(rows):
            self.candidates[rows] = self.candidates_gen.generate(
                self.consumed[rows], self.hist[rows], self.hist_skipped[rows], rngs
            )

    # ---------------------------------------------------------------------------------- step
    def step_rows(self, rows: np.ndarray, slates: np.ndarray, rngs: Sequence[np.random.Generator]) -> StepOutput:
        """Step the sessions ``rows`` with validated ``slates`` (len(rows), K)."""
        c, ds = self.config, self.dataset
        n = len(rows)
        # a copy in catalog mode: info["feedback"]["item_id"] must not alias the caller's action array
        items = np.take_along_axis(self.candidates[rows], slates, 1) if c.action_mode == "candidates" else slates.copy()
        repeated = slate_repeats(self.consumed, rows, items)
        batch = RequestBatch(
            user=self.user[rows], history_items=self.hist[rows], history_watch_ratio=self.hist_ratio[rows],
            history_skipped=self.hist_skipped[rows], slate=items, repeated=repeated, mode=c.feedback_mode,
            step=self.steps[rows], history_time=self.hist_time[rows], history_count=self.hist_count[rows],
        )
        answer = respond_batch(self.simulator, batch, rngs)
        # the answer's arrays are the env's from here on (a simulator hands over fresh ones): edited in place below
        played, clicked = (np.ascontiguousarray(a, bool) for a in (answer.played, answer.clicked))
        skipped = answer.skipped.astype(bool) & played
        watch, rating = (np.ascontiguousarray(a, np.float64) for a in (answer.watch_ratio, answer.rating))
        leave = answer.leave.astype(bool)
        if self.leave_model is not None:  # feed: nothing after the item the user left on was seen (cleared in place)
            leave |= self._leave(rows, played, clicked, skipped, watch, rating, rngs)

        terms = reward_terms_kernel(played, clicked, skipped, watch, repeated, float(ds.thresholds.like_at))
        reward = terms @ self.weights

        self._remember(rows, items, played, clicked, skipped, watch)
        if self.leave_model is None:
            dyn = c.dynamics
            t = dict(zip(REWARD_TERMS, terms.T))
            empty = (t["click"] == 0) if c.feedback_mode == "page" else (t["skip"] == played.sum(1))
            patience = self.patience[rows] + dyn.like_gain * t["like"] - dyn.skip_cost * t["skip"] - dyn.empty_page_cost * empty
            patience = np.maximum(np.minimum(patience, dyn.maximum), 0.0)
            self.patience[rows] = patience
            terminated = (patience <= 0) | leave
        else:  # v1: the leaving model ends sessions; patience is not used
            terminated = leave
        self.steps[rows] += 1
        truncated = np.zeros(n, bool) if c.max_episode_steps is None else (self.steps[rows] >= c.max_episode_steps) & ~terminated
        if self.candidates_gen is not None:
            self._refresh_candidates(rows, rngs)

        known = played & ~np.isnan(watch)
        rated = ~np.isnan(rating)
        feedback = {
            "item_id": items, "position": self._slots[None].repeat(n, 0),
            "clicked": clicked, "skipped": skipped, "played": played, "rated": rated,
            "watch_ratio": np.where(known, watch, -1.0), "rating": np.where(rated, rating, -1.0),
        }
        for key in ("reason_class", "reason_text"):
            values = getattr(answer, key)
            feedback[key] = self._no_reasons(n) if values is None else np.where(values == None, "", values)  # noqa: E711
        return StepOutput(
            obs=self.observe(rows), reward=reward, terminated=terminated, truncated=truncated, feedback=feedback,
            terms=terms, choice_probs=answer.choice_probs, skip_probs=answer.skip_probs, errors=answer.errors,
            users=self.user[rows],
        )

    def _no_reasons(self, n: int) -> np.ndarray:
        """A fresh (n, K) object array of "" (copied from a kept template: ``np.full`` of objects is slow)."""
        blank = self._blank.get(n)
        if blank is None:
            blank = self._blank[n] = np.full((n, self.config.slate_size), "", object)
        return blank.copy()

    def _leave(self, rows: np.ndarray, played: np.ndarray, clicked: np.ndarray, skipped: np.ndarray, watch: np.ndarray,
               rating: np.ndarray, rngs: Sequence[np.random.Generator]) -> np.ndarray:
        """The leaving model's draw (``session_end`` 'fitted' or a LeaveModel; :func:`recsim_env.kernels.leave_draws`):
        after each interaction the user leaves with the model's hazard; in feed mode the items after the one it left
        on are marked not seen, in place. One uniform per slot from each row's generator, drawn whatever happens (same
        seed, same trajectory). Returns who left (N,)."""
        u = np.empty(played.shape)
        for row, rng in zip(u, rngs):
            rng.random(out=row)
        position = self.session_items[rows]
        left = leave_draws(u, self.config.feedback_mode == "feed", played, clicked, skipped, watch, rating, position,
                           self.hist_count[rows], self.leave_model.weights, MIN_HAZARD,
                           float(self.dataset.thresholds.like_at))
        self.session_items[rows] = position
        return left

    def _remember(
        self, rows: np.ndarray, items: np.ndarray, played: np.ndarray, clicked: np.ndarray, skipped: np.ndarray,
        watch: np.ndarray,
    ) -> None:
        """Append what the user played to its memory, in slate order: the clicked item (page) or every played item (feed)."""
        remember(rows, items, played if self.config.feedback_mode == "feed" else clicked, skipped, watch, self.hist,
                 self.hist_ratio, self.hist_skipped, self.hist_time, self.hist_count, self.consumed)

    # ------------------------------------------------------------------------------ observe
    def observe(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        hist = self.hist[rows]
        ratio = self.hist_ratio[rows]
        skipped = self.hist_skipped[rows]
        index, value = self.features.sparse_text
        profiles, _ = profile_sums(hist, skipped, ratio, self.config.profile_decay, index, value, self._text_dim)
        obs = {
            "user": self.user_feats[self.user[rows]],
            "history_items": hist,
            "history_feedback": history_feedback(hist, skipped, ratio, MAX_OBS_RATIO),
            "profile": profiles[0].astype(np.float32),  # the watched items' profile (taste_profiles)
            "patience": self.patience[rows, None].astype(np.float32),
            "step": self.steps[rows, None].astype(np.float32),
        }
        if self.candidates_gen is None:
            obs["consumed"] = self.consumed[rows].view(np.int8)  # a fresh copy (fancy index); bool and int8 share bytes
        else:
            cand = self.candidates[rows]
            obs["candidates"] = cand
            obs["candidate_features"] = self.item_numeric[cand]
        return obs
