"""Reason labels for negative feedback (fast skips), in the G-UBS taxonomy.

With a teacher LLM configured, :class:`TeacherLabeller` asks it (see there). Without one, labels
come from a data-derived labeller whose rules are checked in order:

1. **content-driven** — the item is poorly received overall: its fast-skip rate among train users
   (the labelled user left out) is in the top ``poor_quantile`` of items with at least
   ``min_count`` train interactions;
2. **algorithm-driven** — the item does not fit the user: the cosine of its text/genre vector with
   the user's watched-memory taste profile is below ``fit_quantile`` of the same cosine over the
   train users' real *watched* next items; or it repeats what was just shown: its text vector is
   (near-)identical (cosine >= ``repeat_cosine``) to an item earlier in the same feed or among the
   last ``repeat_window`` memory items;
3. **user-driven** — otherwise (the item is liked by others and fits the user: "fine, but not now").

Every label keeps its provenance: which rule fired and the numbers behind it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from recsim_env.data import Dataset
from recsim_env.features import item_features, taste_profiles
from simulators.training.scenes import FeedScene, SceneConfig, feed_scenes

__all__ = ["DataLabeller", "LabelConfig", "ReasonLabel", "TeacherLabeller", "labeller"]

CLASSES = ("content-driven", "algorithm-driven", "user-driven")


@dataclass(frozen=True)
class LabelConfig:
    """Thresholds of the data-derived labeller (see the module docstring)."""

    poor_quantile: float = 0.25
    min_count: int = 5
    fit_quantile: float = 0.25
    repeat_cosine: float = 0.99
    repeat_window: int = 3
    decay: float = 0.9

    def __post_init__(self) -> None:
        for name in ("poor_quantile", "fit_quantile"):
            if not 0.0 < getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in (0, 1), got {getattr(self, name)}.")
        if self.repeat_window < 0 or self.min_count < 1:
            raise ValueError("repeat_window must be >= 0 and min_count >= 1.")


@dataclass(frozen=True)
class ReasonLabel:
    """A reason class for one skip, with where it came from."""

    label: str
    provenance: str

    @property
    def index(self) -> int:
        return CLASSES.index(self.label)


class DataLabeller:
    """Labels the skips of feed scenes from train statistics only."""

    def __init__(self, dataset: Dataset, config: LabelConfig | None = None) -> None:
        self.dataset = dataset
        self.config = config or LabelConfig()
        self.features = item_features(dataset)
        train = dataset.interactions_of("train")
        items = dataset.inter_item[train]
        skip = dataset.inter_watch_ratio[train] < dataset.thresholds.skip_below
        self.count = np.bincount(items, minlength=dataset.n_items).astype(np.float64)
        self.skips = np.bincount(items, weights=skip, minlength=dataset.n_items)
        rate = self.skips / np.maximum(self.count, 1)
        rated = self.count >= self.config.min_count
        self.poor_rate = float(np.quantile(rate[rated], 1 - self.config.poor_quantile)) if rated.any() else np.inf
        self.fit_threshold = _fit_threshold(dataset, self.config)
        self.train_users = set(dataset.users("train").tolist())

    def skip_rate(self, item: int, user: int, position: int) -> tuple[float, float]:
        """(skip rate, count) of ``item`` among train users, the user's own interaction at ``position`` left out."""
        count, skips = self.count[item], self.skips[item]
        if user in self.train_users:
            h = self.dataset.history(user)
            own = np.flatnonzero(self.dataset.inter_item[h] == item)
            count -= len(own)
            skips -= float((self.dataset.inter_watch_ratio[h.start + own] < self.dataset.thresholds.skip_below).sum())
        return (skips / count if count > 0 else np.nan), count

    def label(self, scenes: Sequence[FeedScene]) -> list[list[ReasonLabel | None]]:
        """One label per shown item: a :class:`ReasonLabel` where the real reaction was a fast skip, else None."""
        c = self.config
        text = self.features.text
        out = []
        for s in scenes:
            r = s.request
            pos, _, _ = taste_profiles(self.features, r.history_items[None], r.history_watch_ratio[None], r.history_skipped[None], c.decay)
            row: list[ReasonLabel | None] = []
            for k, item in enumerate(r.slate):
                if not s.skipped[k]:
                    row.append(None)
                    continue
                item = int(item)
                rate, n = self.skip_rate(item, s.user, s.position + k)
                fit = float(text[item] @ pos[0])
                recent = np.concatenate([r.history_items[-c.repeat_window:] if c.repeat_window else [], r.slate[:k]]).astype(np.int64)
                similar = text[recent] @ text[item] if len(recent) else np.zeros(0)
                if n >= c.min_count and rate >= self.poor_rate:
                    row.append(ReasonLabel("content-driven", f"rule 1: train skip rate {rate:.2f} over {int(n)} >= {self.poor_rate:.2f} (top {c.poor_quantile:.0%} of items)"))
                elif fit < self.fit_threshold:
                    row.append(ReasonLabel("algorithm-driven", f"rule 2: taste fit {fit:.2f} < {self.fit_threshold:.2f} ({c.fit_quantile:.0%} quantile of watched items)"))
                elif text[item].any() and (similar >= c.repeat_cosine).any():
                    row.append(ReasonLabel("algorithm-driven", f"rule 2: repeats item {int(recent[np.argmax(similar)])} just shown (cosine {similar.max():.2f})"))
                else:
                    row.append(ReasonLabel("user-driven", f"rule 3: well received (skip rate {rate:.2f}) and fits ({fit:.2f})"))
            out.append(row)
        return out


class TeacherLabeller:
    """Labels skips with a teacher LLM: the reason class it gives most probability when asked why the
    user skipped (``LLMUserSimulator.reason_probs``: the judge answer forced to "skip"). Any model the
    user configures: a larger one where available, or a trained simulator. The provenance names the
    model and the probability; the teacher must use the G-UBS classes (its configured taxonomy)."""

    def __init__(self, teacher) -> None:
        names = tuple(c.name for c in teacher.scenes.taxonomy) if teacher.dataset is not None else ()
        if names != CLASSES:
            raise ValueError(f"The teacher must be bound to a dataset and use the classes {CLASSES}; it has {names or 'no dataset'}.")
        self.teacher = teacher

    def label(self, scenes: Sequence[FeedScene]) -> list[list[ReasonLabel | None]]:
        """One label per shown item: a :class:`ReasonLabel` where the real reaction was a fast skip, else None."""
        probs = self.teacher.reason_probs([s.request for s in scenes])
        who = f"teacher {self.teacher!r}"
        return [
            [ReasonLabel(CLASSES[int(np.argmax(p[k]))], f"{who}: p={p[k].max():.2f} of {len(CLASSES)} classes") if skip else None
             for k, skip in enumerate(s.skipped)]
            for s, p in zip(scenes, probs)
        ]


def labeller(dataset: Dataset, teacher=None, config: LabelConfig | None = None):
    """The teacher-LLM labeller when a teacher is configured, else the data-derived one."""
    return TeacherLabeller(teacher.bind(dataset)) if teacher is not None else DataLabeller(dataset, config)


@functools.lru_cache(maxsize=4)
def _fit_threshold(dataset: Dataset, config: LabelConfig) -> float:
    """``fit_quantile`` of the taste fit of the train users' real watched next items."""
    feats = item_features(dataset)
    fits = []
    for s in feed_scenes(dataset, "train", SceneConfig(per_user=5, feed_items=1, seed=12345)):
        if s.skipped[0]:
            continue
        r = s.request
        pos, _, _ = taste_profiles(feats, r.history_items[None], r.history_watch_ratio[None], r.history_skipped[None], config.decay)
        fits.append(float(feats.text[int(r.slate[0])] @ pos[0]))
    return float(np.quantile(fits, config.fit_quantile)) if fits else 0.0
