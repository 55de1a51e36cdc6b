"""GRPO rows: scenes -> prompts that ask for ``<think>...</think><answer>...</answer>``, with the truth columns
the rewards of :mod:`simulators.training.rewards` read.

* feed item (S-GRPO, GA-GRPO, the plain judge/reason rewards): ``judge`` = ``"skip"``/``"watch"``,
  ``reason`` = the labelled reason-class index of a skip (None when unlabelled or watched),
  ``reason_text`` = the real reason in words (None: MovieLens has none);
* choice scene (choice reward, VRAgent-R1 next-item selection): ``choice`` = the real option's index,
  ``n_options`` = the letters shown (the options plus "None of these").

GA-GRPO (:func:`group_triples`) turns each feed row into three consecutive rows with the same item and
truth: the training user u_T, a similar user u_S (another member of one of u_T's groups, with its
own history up to the same moment) and the group profile P_g (no history); u_T stands in where no
group or no other member exists. ``role`` names each (:data:`~simulators.training.group_grpo.ROLES`).

:func:`format_completion` writes the answer in the strict format (for an SFT warm-up on the format).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from simulators.base import SimulationRequest
from simulators.groups import UserGroup
from simulators.llm.prompts import LETTERS, SceneBuilder
from simulators.training.labels import ReasonLabel
from simulators.training.scenes import ChoiceScene, FeedScene

__all__ = ["choice_rows", "feed_rows", "format_completion", "group_triples"]

def _think(builder: SceneBuilder) -> SceneBuilder:
    if builder.answer_format != "think":
        raise ValueError("GRPO rows ask for <think>/<answer>: build the SceneBuilder with answer_format='think'.")
    return builder


def _row(prompt: str, judge=None, reason=None, choice=None, n_options=None, role="user", user=-1) -> dict:
    return {"prompt": prompt, "judge": judge, "reason": reason, "reason_text": None, "choice": choice,
            "n_options": n_options, "n_reasons": None, "role": role, "user": int(user)}


def feed_rows(builder: SceneBuilder, scene: FeedScene, labels: Sequence[ReasonLabel | None] | None = None) -> list[dict]:
    """One row per shown item of a feed scene: the user's memory, the item, the real watch/skip and reason."""
    head = _think(builder).system() + builder.context(scene.request)
    rows = []
    for k, item in enumerate(scene.request.slate):
        label = labels[k] if labels is not None and scene.skipped[k] else None
        row = _row(head + builder.chat.ask(builder.feed_question(int(item)), ""), "skip" if scene.skipped[k] else "watch",
                   label.index if label is not None else None, user=scene.user)
        row["n_reasons"] = len(builder.taxonomy)
        rows.append(row)
    return rows


def choice_rows(builder: SceneBuilder, scene: ChoiceScene) -> list[dict]:
    """The page question of a choice scene, answered as 'Choice: [X]'; truth = the real option's letter."""
    question, n = _think(builder).page_question(scene.request)
    prompt = builder.system() + builder.context(scene.request) + builder.chat.ask(question, "")
    return [_row(prompt, choice=int(scene.target), n_options=n, user=scene.user)]


def format_completion(row: dict, think: str = "") -> str:
    """The row's true answer in the strict format (``think`` as the thinking text)."""
    fields = []
    if row.get("judge") is not None:
        fields.append(f"Judge: {row['judge']}")
    if row.get("choice") is not None:
        fields.append(f"Choice: [{LETTERS[row['choice']]}]")
    if row.get("reason") is not None:
        fields.append(f"Reason: [{LETTERS[row['reason']]}]")
    if not fields:
        raise ValueError("The row holds no truth (judge, choice or reason) to write an answer from.")
    return f"<think>{think}</think><answer>{'; '.join(fields)}</answer>"


def _group_context(group: UserGroup) -> str:
    traits = ", ".join(name.split("=", 1)[-1] for name in group.preference_traits)
    return (f"My profile: I stand for a group of users. {group.profile_summary}\nWhat we like most: {traits}.\n"
            f"{group.recommendation_directions}\n")


def group_triples(
    builder: SceneBuilder, scene: FeedScene, groups: Sequence[UserGroup], rng: np.random.Generator,
    labels: Sequence[ReasonLabel | None] | None = None, memory: int = 30,
) -> list[dict]:
    """GA-GRPO rows of a feed scene: for each item, (u_T, u_S, P_g) in that order, with u_T's truth."""
    ds = builder.dataset
    mine = [g for g in groups if scene.user in g.members]
    group = mine[int(rng.integers(len(mine)))] if mine else None
    others = [m for m in group.members if m != scene.user] if group else []
    similar = int(others[int(rng.integers(len(others)))]) if others else None
    user_rows = feed_rows(builder, scene, labels)
    sim_head = grp_head = None
    if similar is not None:
        h = ds.history(similar)
        when = ds.inter_time[ds.history(scene.user).start + scene.position]
        end = int(np.searchsorted(ds.inter_time[h], when, side="left"))  # its history before u_T's moment only
        req = SimulationRequest.from_history(ds, similar, end, scene.request.slate, "feed", memory)
        sim_head = builder.system() + builder.context(req)
    if group is not None:
        grp_head = builder.system() + _group_context(group)
    head = builder.system() + builder.context(scene.request)
    out = []
    for row in user_rows:
        question = row["prompt"][len(head):]
        for role, h, who in (("user", head, scene.user), ("similar", sim_head, similar), ("group", grp_head, None)):
            r = dict(row, role=role)
            if h is None:  # no similar user / group: u_T stands in
                r["user"] = scene.user
            else:
                r["prompt"] = h + question
                r["user"] = -1 if role == "group" else int(who)
            out.append(r)
    return out
