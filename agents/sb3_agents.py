"""Stable-Baselines3 agents on ``RecSimEnv``: one training entry point, ``--algo`` picks the algorithm.

* ``ppo`` / ``a2c``: the env's ``MultiDiscrete`` slate action, ``MultiInputPolicy`` on the Dict observation.
* ``maskable_ppo`` (sb3-contrib): PPO with ``action_masks()`` that forbid consumed items (catalog
  mode; in candidates mode every candidate is allowed).
* ``dqn``: DQN needs a ``Discrete`` action, so :class:`SlateBuilder` fills the slate position by
  position: K agent steps choose one candidate each (the observation carries a mask of what is
  already in the slate), the env steps once the slate is full and its reward goes to the last pick.

``policy="scorer"`` (the default in candidates mode) runs every algorithm on :class:`SlateBuilder`
with :class:`agents.sb3_features.CandidateScorer`: one small MLP scores each candidate from its features and the user's
taste profile, the same weights for every candidate, and these scores are the action logits (or Q
values). The slate's independent ``MultiDiscrete`` slots cannot say "a different good item in each
slot" and shuffled candidates give an index no meaning, so ``policy="slate"`` (plain
``MultiInputPolicy`` on the MultiDiscrete action) learns little in a small budget (measured: PPO
15k steps, return 18.2 vs random 24.9); with the scorer PPO beats random within ~1 minute.
With SlateBuilder, ``total_timesteps`` counts picks (K per env step).

Agents train on the fast data-fitted simulator by default; candidates mode is the default action mode.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

__all__ = ["ALGOS", "AgentConfig", "MaskedSlates", "SB3Policy", "SlateBuilder", "cached_agent", "make_training_env", "slate_action_masks", "train_agent"]

ALGOS = ("ppo", "a2c", "dqn", "maskable_ppo")


class SlateBuilder(gym.Wrapper):
    """A ``Discrete(n)`` view of the slate action: one agent step picks one slot's item.

    Observation: the env's Dict plus ``slate_mask`` (n,), 1 where an action is already in the
    slate, and ``slot`` (1,), the fraction of the slate filled. Intermediate picks give reward 0;
    the env's reward arrives with the K-th pick. Picking an action twice is allowed (the env
    counts it as a repeat).
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        if not isinstance(env.action_space, spaces.MultiDiscrete):
            raise TypeError(f"SlateBuilder wraps a MultiDiscrete slate action, got {env.action_space}.")
        self.k = len(env.action_space.nvec)
        self.n = int(env.action_space.nvec[0])
        self.action_space = spaces.Discrete(self.n)
        self.observation_space = spaces.Dict({
            **env.observation_space.spaces,
            "slate_mask": spaces.Box(0.0, 1.0, (self.n,), np.float32),
            "slot": spaces.Box(0.0, 1.0, (1,), np.float32),
        })
        self._picks: list[int] = []
        self._obs: dict | None = None

    def action_masks(self) -> np.ndarray:
        """MaskablePPO: an action already in the slate is not allowed again."""
        return self.allowed(self._picks)

    def allowed(self, picks: list[int]) -> np.ndarray:
        mask = np.ones(self.n, bool)
        mask[picks] = False
        return mask

    def augment(self, obs: dict, picks: list[int]) -> dict:
        """The agent's observation: the env's plus the mask of ``picks`` and the filled fraction."""
        mask = np.zeros(self.n, np.float32)
        mask[picks] = 1.0
        return {**obs, "slate_mask": mask, "slot": np.array([len(picks) / self.k], np.float32)}

    def _augment(self, obs: dict) -> dict:
        return self.augment(obs, self._picks)

    def reset(self, **kwargs):
        self._picks = []
        self._obs, info = self.env.reset(**kwargs)
        return self._augment(self._obs), info

    def step(self, action):
        self._picks.append(int(action))
        if len(self._picks) < self.k:
            return self._augment(self._obs), 0.0, False, False, {"slate_so_far": list(self._picks)}
        slate = np.array(self._picks)
        self._picks = []
        self._obs, reward, terminated, truncated, info = self.env.step(slate)
        return self._augment(self._obs), reward, terminated, truncated, info


class MaskedSlates(gym.Wrapper):
    """``action_masks()`` for MaskablePPO: per slot, catalog items not consumed (all candidates in candidates mode)."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.k = len(env.action_space.nvec)
        self._obs: dict | None = None

    def reset(self, **kwargs):
        self._obs, info = self.env.reset(**kwargs)
        return self._obs, info

    def step(self, action):
        self._obs, *rest = self.env.step(action)
        return (self._obs, *rest)

    def action_masks(self) -> np.ndarray:
        return slate_action_masks(self._obs, int(self.env.action_space.nvec[0]), self.k)


def slate_action_masks(obs: dict[str, np.ndarray], n: int, k: int) -> np.ndarray:
    """MaskablePPO's flat mask for a ``MultiDiscrete([n] * k)`` slate: consumed catalog items are masked."""
    allowed = obs["consumed"] == 0 if "consumed" in obs else np.ones(n, bool)
    return np.tile(allowed, k)


@dataclass
class AgentConfig:
    """What ``recsim train-agent`` trains. ``env_kwargs`` go to ``gym.make(env_id, ...)``;
    ``algo_kwargs`` to the SB3 constructor (e.g. ``{"learning_rate": 3e-4, "n_steps": 256}``)."""

    algo: str = "ppo"
    total_timesteps: int = 60_000  # PPO with the scorer learns a little from here on (tests, docs/policies.md)
    env_id: str = "RecSimEnv-v1"
    seed: int = 0
    env_kwargs: dict[str, Any] = field(default_factory=lambda: {"action_mode": "candidates"})
    algo_kwargs: dict[str, Any] = field(default_factory=dict)
    policy: str = "auto"  # "scorer" | "slate" | "auto" (scorer in candidates mode, slate in catalog mode)

    def __post_init__(self) -> None:
        if self.algo not in ALGOS:
            raise ValueError(f"algo must be one of {ALGOS}, got {self.algo!r}.")
        if self.policy not in ("auto", "scorer", "slate"):
            raise ValueError(f"policy must be 'auto', 'scorer' or 'slate', got {self.policy!r}.")
        if self.policy == "scorer" and self.env_kwargs.get("action_mode", "catalog") != "candidates":
            raise ValueError("policy='scorer' scores candidates: pass env_kwargs={'action_mode': 'candidates', ...}.")

    @property
    def uses_scorer(self) -> bool:
        return self.policy == "scorer" or (self.policy == "auto" and self.env_kwargs.get("action_mode", "catalog") == "candidates")

    @property
    def builds_slates(self) -> bool:
        """Whether the agent fills the slate pick by pick (SlateBuilder)."""
        return self.uses_scorer or self.algo == "dqn"


def _without_empty_keys(env: gym.Env) -> gym.Env:
    """SB3 cannot batch zero-width observation keys (e.g. ``user`` for a dataset without a user file)."""
    keep = [k for k, space in env.observation_space.spaces.items() if int(np.prod(space.shape)) > 0]
    if len(keep) == len(env.observation_space.spaces):
        return env
    return gym.wrappers.FilterObservation(env, keep)


def make_training_env(config: AgentConfig) -> gym.Env:
    """The env an algorithm trains on (and is evaluated on): wrapped as the algorithm needs."""
    import recsim_env  # noqa: F401  (registers the env)

    env = _without_empty_keys(gym.make(config.env_id, **config.env_kwargs))
    if config.builds_slates:
        return SlateBuilder(env)
    if config.algo == "maskable_ppo":
        return MaskedSlates(env)
    return env


def _algo_class(algo: str):
    if algo == "maskable_ppo":
        try:
            from sb3_contrib import MaskablePPO
        except ImportError as err:
            raise ImportError("algo='maskable_ppo' needs sb3-contrib: pip install sb3-contrib") from err
        return MaskablePPO
    import stable_baselines3 as sb3

    return {"ppo": sb3.PPO, "a2c": sb3.A2C, "dqn": sb3.DQN}[algo]


def train_agent(config: AgentConfig, out: str | Path | None = None, progress: bool = True):
    """Train with SB3 on the fitted simulator; save ``<out>/model.zip`` and ``<out>/card.json``."""
    env = make_training_env(config)
    cls = _algo_class(config.algo)
    kwargs = dict(config.algo_kwargs)
    if config.algo == "dqn":
        kwargs = {"learning_starts": 500, "buffer_size": 20_000, "exploration_fraction": 0.3, **kwargs}
    if config.uses_scorer:
        from agents.sb3_features import CandidateScorer

        arch = {"net_arch": []} if config.algo == "dqn" else {"net_arch": {"pi": [], "vf": [64]}, "share_features_extractor": False}
        kwargs["policy_kwargs"] = {"features_extractor_class": CandidateScorer, **arch, **kwargs.get("policy_kwargs", {})}
        if config.algo in ("ppo", "maskable_ppo"):
            kwargs = {"n_steps": 500, "batch_size": 100, **kwargs}
    model = cls("MultiInputPolicy", env, seed=config.seed, verbose=0, device="cpu", **kwargs)
    if config.uses_scorer:
        _scores_as_logits(model)
    start = time.perf_counter()
    model.learn(total_timesteps=config.total_timesteps, progress_bar=progress)
    seconds = time.perf_counter() - start
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        model.save(out / "model.zip")
        (out / "card.json").write_text(json.dumps(
            {"config": asdict(config), "builds_slates": config.builds_slates, "train_seconds": round(seconds, 1), "library": f"stable-baselines3 {_sb3_version()}"},
            indent=1))
    return model


def _scores_as_logits(model) -> None:
    """Start the head on top of CandidateScorer as the identity: candidate j's score is its logit / Q value."""
    import torch

    head = model.q_net.q_net[-1] if hasattr(model, "q_net") else model.policy.action_net
    with torch.no_grad():
        head.weight.copy_(torch.eye(head.weight.shape[0]))
        head.bias.zero_()
    if hasattr(model, "q_net_target"):
        model.q_net_target.load_state_dict(model.q_net.state_dict())


def cached_agent(algo: str, total_timesteps: int, env_kwargs: dict[str, Any], seed: int = 0) -> Path:
    """Folder of an agent trained with these settings, training it first if the cache has none."""
    import hashlib

    from recsim_env.data import cache_dir

    config = AgentConfig(algo=algo, total_timesteps=total_timesteps, seed=seed, env_kwargs=env_kwargs)
    key = hashlib.sha1(json.dumps(asdict(config), sort_keys=True, default=str).encode()).hexdigest()[:12]
    out = cache_dir() / "agents" / f"{algo}-{key}"
    if not (out / "model.zip").exists():
        train_agent(config, out)
    return out


def _sb3_version() -> str:
    import stable_baselines3

    return stable_baselines3.__version__


class SB3Policy:
    """A trained SB3 agent as a ``RecommenderPolicy`` (deterministic actions).

    ``SB3Policy.load(path)`` reads ``model.zip`` and the ``card.json`` next to it (which says the
    algorithm and the env it was trained on); the env you evaluate in must have the same spaces.
    """

    def __init__(self, model, algo: str, env_kwargs: dict[str, Any] | None = None, builds_slates: bool = False,
                 deterministic: bool = True) -> None:
        self.model = model
        self.algo = algo
        self.deterministic = deterministic
        self.env_kwargs = env_kwargs or {}
        self.builds_slates = builds_slates
        self._builder: SlateBuilder | None = None

    @classmethod
    def load(cls, path: str | Path, deterministic: bool = True) -> "SB3Policy":
        path = Path(path)
        folder = path if path.is_dir() else path.parent
        card_path = folder / "card.json"
        if not card_path.exists():
            raise FileNotFoundError(f"No card.json in {folder}: pass the folder `recsim train-agent --out` wrote.")
        card = json.loads(card_path.read_text())
        algo = card["config"]["algo"]
        model = _algo_class(algo).load(folder / "model.zip", device="cpu")
        return cls(model, algo, card["config"]["env_kwargs"], card.get("builds_slates", algo == "dqn"), deterministic)

    def bind(self, env: gym.Env) -> "SB3Policy":
        """Check the env's observation and action spaces are the ones the agent was trained on."""
        expected = self.model.observation_space
        env = _without_empty_keys(env)
        if self.builds_slates:
            self._builder = SlateBuilder(env)
            space, action_ok = self._builder.observation_space, self._builder.action_space == self.model.action_space
        else:
            space, action_ok = env.observation_space, env.action_space == self.model.action_space
        if space != expected or not action_ok:
            raise ValueError(
                f"This {self.algo} agent was trained on an env made with {self.env_kwargs}; the env it is asked to act in "
                f"has different spaces ({env.action_space}). Make the env with the same arguments."
            )
        return self

    def act(self, observation: dict[str, np.ndarray], info: dict[str, Any]) -> np.ndarray:
        observation = {k: v for k, v in observation.items() if v.size > 0}
        if self.builds_slates:
            return self._build_slate(observation)
        if self.algo == "maskable_ppo":
            nvec = self.model.action_space.nvec
            masks = slate_action_masks(observation, int(nvec[0]), len(nvec))
            action, _ = self.model.predict(observation, deterministic=True, action_masks=masks)
            return np.asarray(action)
        action, _ = self.model.predict(observation, deterministic=self.deterministic)
        return np.asarray(action)

    def log_propensity(self, observation: dict[str, np.ndarray], info: dict[str, Any], slate: np.ndarray) -> float:
        """log P(slate | observation) as this policy acts: with ``deterministic=False`` the agent's own action
        distribution (PPO / A2C: independent per position over MultiDiscrete); deterministic: 0 for its own slate and
        -inf for others. Agents that build slates pick by pick or need action masks do not give one (NaN)."""
        if self.builds_slates or self.algo == "maskable_ppo":
            return float("nan")
        observation = {k: v for k, v in observation.items() if v.size > 0}
        if self.deterministic:
            return 0.0 if np.array_equal(self.act(observation, info), np.asarray(slate)) else float("-inf")
        import torch as th

        obs_tensor, _ = self.model.policy.obs_to_tensor(observation)
        with th.no_grad():
            dist = self.model.policy.get_distribution(obs_tensor)
            return float(dist.log_prob(th.as_tensor(np.asarray(slate)[None], device=self.model.device)).sum())

    def _build_slate(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        if self._builder is None:
            raise RuntimeError("This agent builds slates pick by pick through SlateBuilder: call policy.bind(env) first.")
        builder, picks = self._builder, []
        for _ in range(builder.k):
            extra = {"action_masks": builder.allowed(picks)} if self.algo == "maskable_ppo" else {}
            action, _ = self.model.predict(builder.augment(observation, picks), deterministic=True, **extra)
            picks.append(int(action))
        return np.array(picks)
