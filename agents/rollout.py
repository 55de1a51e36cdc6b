"""Rollouts of a recommender policy on RecSimEnv-v1 and their metrics (used by policies, benchmarks and the CLI).

Definitions (G-UBS's where it defines them; "played" = items the user started: the clicked item in
page mode, every shown item in feed mode):

* return: mean over episodes of the summed reward.
* click_rate: clicked items / shown items.
* fast_skip_rate: fast-skipped items (watch ratio < 0.3) / played items.
* person_play_rate (G-UBS Person Play Rate): mean over sessions (one user each) of the session's
  mean watch ratio; sessions with no played item are left out.
* total_play_rate (G-UBS Total Play Rate): total watched fraction / number of played items, i.e.
  total play time over total duration with every item's duration taken as 1 (MovieLens has none).
* finish_rate (G-UBS Finish Rate): played items with watch ratio > 0.9 / played items.
* play_rate_30 (G-UBS Play Rate > 30%): played items with watch ratio > 0.3 / played items.
* session_length: mean steps per episode.
* repeat_rate: shown items that were already consumed or duplicated in their slate / shown items.
* coverage: distinct items shown over all episodes / catalogue size.
* intra_list_diversity: mean over slates of the mean over item pairs of 1 - cosine similarity of
  their text/genre vectors (items without text count as dissimilar).
* novelty: mean over shown items of -log2 p(item), p = (train count + 1) / (train interactions + n_items).

Watch-ratio metrics use played items whose ratio is known. ``benchmarks.rollout`` compares
policies over seeds with 95% intervals.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import gymnasium as gym
import numpy as np
from tqdm.auto import tqdm

from agents.base import PolicyLike, as_policy

__all__ = ["METRICS", "EpisodeStats", "RolloutResult", "rollout", "rollout_metrics"]

METRICS = (
    "return", "click_rate", "fast_skip_rate", "person_play_rate", "total_play_rate", "finish_rate", "play_rate_30",
    "session_length", "repeat_rate", "coverage", "intra_list_diversity", "novelty",
)


def _ratio(num: float, den: float) -> float:
    return float(num) / den if den else float("nan")


def rollout_metrics(episodes: Sequence, features) -> dict[str, float]:
    """The metrics above for a list of :class:`EpisodeStats` (``features``: ItemFeatures)."""
    shown = sum(e.shown for e in episodes)
    played = sum(e.played for e in episodes)
    watch = np.array([w for e in episodes for w in e.watch], dtype=np.float64)
    per_session = [float(np.mean(e.watch)) for e in episodes if e.watch]
    slates = [np.asarray(s, dtype=np.int64) for e in episodes for s in e.slates if len(s)]
    items = np.concatenate(slates) if slates else np.zeros(0, np.int64)
    n_items = len(features.count)
    p = (features.count + 1.0) / (features.count.sum() + n_items)
    diversity = []
    for s in slates:
        if len(s) < 2:
            continue
        vec = features.text[s].astype(np.float64)
        sim = vec @ vec.T
        iu = np.triu_indices(len(s), 1)
        diversity.append(float(np.mean(1.0 - sim[iu])))
    return {
        "episodes": float(len(episodes)),
        "return": float(np.mean([e.ret for e in episodes])) if episodes else float("nan"),
        "click_rate": _ratio(sum(e.clicks for e in episodes), shown),
        "fast_skip_rate": _ratio(sum(e.skips for e in episodes), played),
        "person_play_rate": float(np.mean(per_session)) if per_session else float("nan"),
        "total_play_rate": _ratio(watch.sum(), len(watch)),
        "finish_rate": _ratio((watch > 0.9).sum(), len(watch)),
        "play_rate_30": _ratio((watch > 0.3).sum(), len(watch)),
        "session_length": float(np.mean([e.length for e in episodes])) if episodes else float("nan"),
        "repeat_rate": _ratio(sum(e.repeats for e in episodes), shown),
        "coverage": _ratio(len(np.unique(items)), n_items),
        "intra_list_diversity": float(np.mean(diversity)) if diversity else float("nan"),
        "novelty": float(np.mean(-np.log2(p[items]))) if len(items) else float("nan"),
    }


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
        fb = info["feedback"]
        played, watch = fb["played"], fb["watch_ratio"]
        self.slates.append(fb["item_id"].tolist())
        self.shown += len(fb["item_id"])
        self.clicks += int(fb["clicked"].sum())
        self.played += int(played.sum())
        self.skips += int((fb["skipped"] & played).sum())
        self.watch.extend(watch[played & (watch >= 0)].tolist())  # -1: not played or unknown
        self.repeats += int(info["reward_terms"]["repeat"])


@dataclass
class RolloutResult:
    """Per-episode records; :meth:`metrics` summarises them (definitions in the module docstring)."""

    episodes: list[EpisodeStats] = field(default_factory=list)
    features: object = None  # recsim_env.features.ItemFeatures of the env's dataset

    def metrics(self) -> dict[str, float]:
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
