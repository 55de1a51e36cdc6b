"""Preference pairs from logged behaviour, for DPO: the real answer against a wrong one.

Distillation (:mod:`simulators.training.distill`) needs a teacher that writes decision processes and a
predictor that reads them; with SmolLM2-135M as both it yields no pairs (measured, see the README).
These pairs need no teacher: the logs say what the user did, and the *rejected* answer is one the
user did not give. Each completion is the answer letter only (``"C]"``), the first token the
simulator scores, so DPO moves exactly the distributions the simulator reads:

* **choice** (train choice scenes): chosen = the real item's letter; rejected = the reference
  model's most likely *wrong* option (a hard negative; with no reference, a uniformly drawn wrong
  option);
* **feed, real item** (train feed scenes): chosen = the real judge (``A]`` watched / ``B]`` fast
  skip by the dataset's threshold), rejected = the other;
* **feed, unseen item**: a choice scene's ``random``-source option -- an item the user never
  interacted with, released by then, drawn uniformly: Agent4Rec's negatives -- shown as a feed
  item; chosen = skip ``B]``, rejected = watch ``A]``. An *assumption* (MovieLens logs no
  impressions), as in the Agent4Rec protocol: a random never-interacted item would not be watched.

Scenes come from the train users only (the fidelity benchmark uses the test users). TRL's DPO trainer
appends the end-of-sequence token to both completions, so the letter is the only token that differs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from recsim_env.data import Dataset
from simulators.base import choice_distributions
from simulators.llm.prompts import LETTERS, SceneBuilder
from simulators.training.examples import SKIP, WATCH, choice_example, feed_examples, passed_over_option, unchosen_example
from simulators.training.scenes import ChoiceScene, SceneConfig, choice_scenes, feed_scenes

__all__ = ["PairConfig", "behaviour_pairs", "choice_pair", "hardest_wrong", "judge_pair"]


@dataclass(frozen=True)
class PairConfig:
    """n_pairs: pairs written (fewer if the train scenes run out).
    feed_fraction: share of feed-judge pairs; unseen_fraction: share of those on never-interacted items."""

    n_pairs: int = 256
    feed_fraction: float = 0.5
    unseen_fraction: float = 0.5
    seed: int = 0
    scenes: SceneConfig = field(default_factory=SceneConfig)

    def __post_init__(self) -> None:
        if self.n_pairs < 1:
            raise ValueError(f"n_pairs must be >= 1, got {self.n_pairs}.")
        for name in ("feed_fraction", "unseen_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}.")


def choice_pair(builder: SceneBuilder, scene: ChoiceScene, rejected: int) -> dict[str, str]:
    """The page prompt; chosen = the real option's letter, rejected = option ``rejected``'s."""
    if rejected == scene.target or not 0 <= rejected < len(scene.options):
        raise ValueError(f"rejected must be a wrong option in [0, {len(scene.options)}) other than the target {scene.target}, got {rejected}.")
    prompt = choice_example(builder, scene)["prompt"]
    return {"prompt": prompt, "chosen": f"{LETTERS[scene.target]}]", "rejected": f"{LETTERS[rejected]}]"}


def judge_pair(prompt: str, skip: bool) -> dict[str, str]:
    """A feed prompt; chosen = the given judge (skip or watch), rejected = the other."""
    right, wrong = (SKIP, WATCH) if skip else (WATCH, SKIP)
    return {"prompt": prompt, "chosen": f"{LETTERS[right]}]", "rejected": f"{LETTERS[wrong]}]"}


def hardest_wrong(probs: np.ndarray, target: int) -> int:
    """The most likely option other than ``target`` (ties: the first)."""
    p = np.asarray(probs, dtype=np.float64).copy()
    p[target] = -np.inf
    return int(np.argmax(p))


def behaviour_pairs(
    dataset: Dataset, builder: SceneBuilder, config: PairConfig | None = None, reference=None,
) -> tuple[list[dict[str, str]], dict[str, int]]:
    """Seeded pairs of the three kinds in the module docstring and their counts.

    ``reference``: a bound simulator (usually the model DPO starts from) whose most likely wrong option
    is each choice pair's rejected answer; None draws the wrong option uniformly.
    """
    config = config or PairConfig()
    rng = np.random.default_rng(config.seed)
    n_feed = int(round(config.n_pairs * config.feed_fraction))
    n_unseen = int(round(n_feed * config.unseen_fraction))
    n_real = n_feed - n_unseen
    n_choice = config.n_pairs - n_feed

    choice = choice_scenes(dataset, "train", config.scenes)
    order = rng.permutation(len(choice))
    picked = [choice[i] for i in order[:n_choice]]
    if reference is not None:
        probs = choice_distributions(reference, [s.request for s in picked], batch_size=32)
        wrong = [hardest_wrong(p, s.target) for p, s in zip(probs, picked)]
    else:
        wrong = [int(rng.choice([j for j in range(len(s.options)) if j != s.target])) for s in picked]
    rows = [choice_pair(builder, s, w) for s, w in zip(picked, wrong)]
    counts = {"choice": len(rows)}

    unseen = []
    for i in order[n_choice:]:  # other scenes than the choice pairs', one random-source option each
        if len(unseen) == n_unseen:
            break
        s = choice[i]
        j = passed_over_option(s, rng, ("random",))
        if j is not None:
            unseen.append(judge_pair(unchosen_example(builder, s, j)["prompt"], skip=True))
    rows += unseen
    counts["feed_unseen"] = len(unseen)

    feed = feed_scenes(dataset, "train", config.scenes)
    real = []
    for i in rng.permutation(len(feed)):
        if len(real) >= n_real:
            break
        s = feed[i]
        for ex, skipped in zip(feed_examples(builder, s), s.skipped):
            real.append(judge_pair(ex["prompt"], skip=bool(skipped)))
    rows += real[:n_real]
    counts["feed_real"] = len(real[:n_real])
    counts["feed_real_skips"] = sum(r["chosen"] == f"{LETTERS[SKIP]}]" for r in real[:n_real])
    order = rng.permutation(len(rows))
    return [rows[i] for i in order], counts
