"""Scenes -> supervised examples in exactly the text the simulator scores.

The prompt of an example is what :class:`~simulators.llm.simulator.LLMUserSimulator` feeds the model
(system text, the user's memory, then the page question or one feed item's judge question, ending
right before the answer letter); the completion is the real user's answer in the simulator's own
follow-up format, so training moves the very distributions the simulator reads:

* choice scene: ``"C] Rating: [E]"`` -- the real item's letter, then its real rating (rated data) or
  watched-fraction bin (play-time data);
* feed item watched: ``"A] Rating: [D]"``; feed item skipped: ``"B] Reason: [A]"`` with the reason
  class from a labeller (:mod:`simulators.training.labels`). A skip without a label (a labeller
  that abstains) ends at the judge: ``"B]"``;
* optionally, an exposure option the user passed over, as a skipped feed item (judge only, ``"B]"``):
  without them every feed example is an item the user really consumed, and the model never sees
  what a user would skip outright.

With a *rationale* (a decision process from :mod:`simulators.training.distill`) the example uses
the decision-process layout instead: the question ends with "Stimulus:" and the completion is the
rationale followed by ``Behavior: [C]``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from simulators.llm.prompts import LETTERS, PAGE_PREFIX, SceneBuilder
from simulators.training.labels import ReasonLabel
from simulators.training.scenes import ChoiceScene, FeedScene

__all__ = ["choice_example", "decision_example", "decision_prompt", "feed_examples", "page_prompt", "passed_over_option", "unchosen_example"]

WATCH, SKIP = 0, 1  # judge letters A / B, as the simulator's system text defines them


def page_prompt(builder: SceneBuilder, scene: ChoiceScene) -> str:
    """The simulator's page-mode prompt for a scene (ends with ``Behavior: [``)."""
    question, _ = builder.page_branch(scene.request)
    return builder.system() + builder.context(scene.request) + question


def _real_reaction(builder: SceneBuilder, scene: ChoiceScene) -> tuple[float, float]:
    ds = builder.dataset
    idx = ds.history(scene.user).start + scene.position
    rating = float(ds.inter_rating[idx]) if ds.has_ratings else float("nan")
    return float(ds.inter_watch_ratio[idx]), rating


def choice_example(builder: SceneBuilder, scene: ChoiceScene) -> dict[str, str]:
    """Prompt/completion for one choice scene: the real option's letter, then its real value."""
    ratio, rating = _real_reaction(builder, scene)
    value = builder.value_answer(ratio, rating)
    completion = builder.follow_up(scene.target) + LETTERS[value] + "]"
    return {"prompt": page_prompt(builder, scene), "completion": completion}


def feed_examples(builder: SceneBuilder, scene: FeedScene, labels: Sequence[ReasonLabel | None] | None = None) -> list[dict[str, str]]:
    """One prompt/completion per shown item: judge (watch/skip), then reason (skip) or value (watch)."""
    head = builder.system() + builder.context(scene.request)
    out = []
    for k, item in enumerate(scene.request.slate):
        prompt = head + builder.feed_branch(int(item))
        if scene.skipped[k]:
            label = labels[k] if labels is not None else None
            completion = builder.follow_up(SKIP, skipped=True) + f"{LETTERS[label.index]}]" if label else f"{LETTERS[SKIP]}]"
        else:
            value = builder.value_answer(float(scene.watch_ratio[k]), float(scene.rating[k]) if len(scene.rating) else np.nan)
            completion = builder.follow_up(WATCH) + LETTERS[value] + "]"
        out.append({"prompt": prompt, "completion": completion})
    return out


def unchosen_example(builder: SceneBuilder, scene: ChoiceScene, option: int) -> dict[str, str]:
    """An exposure option the user did not pick, as a feed item they skip: judge only (``"B]"``), no reason
    is claimed. An assumption (MovieLens logs no impressions): an item shown beside the real choice and
    passed over would not have been watched."""
    if option == scene.target:
        raise ValueError("option is the real choice; pick one of the other options.")
    item = int(scene.request.slate[option])
    return {"prompt": builder.system() + builder.context(scene.request) + builder.feed_branch(item), "completion": f"{LETTERS[SKIP]}]"}


def passed_over_option(scene: ChoiceScene, rng: np.random.Generator, sources: Sequence[str] | None = None) -> int | None:
    """A uniformly drawn option other than the real choice, from the given option ``sources`` (None: any);
    None when the scene has no such option. ``sources=("random",)`` gives never-interacted items
    (Agent4Rec's negatives); any source also gives the collaborative / content distractors."""
    options = [j for j, src in enumerate(scene.sources) if j != scene.target and (sources is None or src in sources)]
    return int(rng.choice(options)) if options else None


def decision_example(builder: SceneBuilder, scene: ChoiceScene, rationale: str, choice: int) -> dict[str, str]:
    """Prompt/completion for a decision process that ends with ``Behavior: [<choice>]``."""
    prompt, start = decision_prompt(builder, scene)
    return {"prompt": prompt, "completion": " " + rationale.strip() + f"\n{PAGE_PREFIX}{LETTERS[choice]}]"}


def decision_prompt(builder: SceneBuilder, scene: ChoiceScene) -> tuple[str, str]:
    """(prompt, answer start): the page question, asked to think first (Stimulus, Knowledge, Evaluation)."""
    question, _ = builder.page_branch(scene.request)
    question = question[: question.rindex(builder.chat.assistant_open)]
    ask = (question + " Think as this user in three short parts: Stimulus (what catches your eye), Knowledge (what you "
           f"know about it and your tastes), Evaluation (how you weigh it); then answer {PAGE_PREFIX}letter].")
    return builder.system() + builder.context(scene.request) + builder.chat.ask(ask, "Stimulus:"), "Stimulus:"
