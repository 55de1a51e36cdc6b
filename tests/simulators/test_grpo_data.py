"""GRPO rows: prompts ask for the strict format, truth columns match the scene, GA triples are ordered and leak-free."""

import numpy as np
import pytest

from simulators.groups import UserGroup
from simulators.llm.prompts import ChatFormat, SceneBuilder
from simulators.training.grpo_data import choice_rows, feed_rows, format_completion, group_triples
from simulators.training.group_grpo import ROLES
from simulators.training.labels import DataLabeller
from simulators.training.rewards import StepwiseReward, parse_completion
from simulators.training.scenes import SceneConfig, choice_scenes, feed_scenes


@pytest.fixture(scope="module")
def builder(ml100k, tokenizer):
    return SceneBuilder(ml100k, ChatFormat(tokenizer), history_in_prompt=3, answer_format="think")


@pytest.fixture(scope="module")
def scene_and_labels(ml100k):
    scene = next(s for s in feed_scenes(ml100k, "train", SceneConfig(per_user=1)) if s.skipped.any())
    return scene, DataLabeller(ml100k).label([scene])[0]


def test_feed_rows_carry_the_real_reaction(builder, scene_and_labels):
    scene, labels = scene_and_labels
    rows = feed_rows(builder, scene, labels)
    assert len(rows) == len(scene.request.slate)
    for k, row in enumerate(rows):
        assert row["judge"] == ("skip" if scene.skipped[k] else "watch")
        assert row["reason"] == (labels[k].index if scene.skipped[k] and labels[k] is not None else None)
        assert "<think></think>" in row["prompt"] and builder.item_texts[int(scene.request.slate[k])] in row["prompt"]
        answer = format_completion(row, think="I know this one.")
        parsed = parse_completion(answer, n_reasons=3)  # the truth, written in the format, parses back to itself
        assert parsed.judge == row["judge"] and parsed.reason == row["reason"]
        # ... and earns the full S-GRPO judge (+ reason) reward
        expected = 0.5 + (1.0 if row["reason"] is not None else 0.0)
        assert StepwiseReward()(completions=[answer], **{c: [row[c]] for c in ("judge", "reason", "reason_text")}) == [expected]


def test_choice_rows_truth_is_the_real_option(builder, ml100k):
    scene = choice_scenes(ml100k, "train", SceneConfig(per_user=1, seed=4))[0]
    (row,) = choice_rows(builder, scene)
    assert row["choice"] == scene.target and row["n_options"] == len(scene.request.slate) + 1
    assert "None of these" in row["prompt"] and "Choice: [X]" in row["prompt"]
    assert parse_completion(format_completion(row), n_options=row["n_options"]).choice == scene.target
    with pytest.raises(ValueError, match="no truth"):
        format_completion({"judge": None})


def test_group_triples_order_similar_user_and_profile(builder, scene_and_labels, ml100k):
    scene, labels = scene_and_labels
    u = scene.user
    mates = [int(x) for x in ml100k.users("train") if x != u][:3]
    group = UserGroup(0, u, [u, *mates], {"tag=Comedy": 0.5, "tag=Drama": 0.3}, "4 users who like comedy.",
                      "Recommend more Comedy; show less Horror.")
    rows = group_triples(builder, scene, [group], np.random.default_rng(0), labels)
    k = len(scene.request.slate)
    assert [r["role"] for r in rows] == list(ROLES) * k
    user_rows = feed_rows(builder, scene, labels)
    for j in range(k):
        t, s, g = rows[3 * j : 3 * j + 3]
        assert t == dict(user_rows[j], role="user")
        assert s["user"] in mates and g["user"] == -1
        assert t["judge"] == s["judge"] == g["judge"] and t["reason"] == s["reason"] == g["reason"]
        assert t["prompt"].endswith(s["prompt"][-200:]) and t["prompt"].endswith(g["prompt"][-200:])  # same item question
        assert "4 users who like comedy." in g["prompt"] and "I watched, oldest first" not in g["prompt"]
    # the similar user's memory is its last 3 items before u_T's moment (no future leakage)
    when = ml100k.inter_time[ml100k.history(u).start + scene.position]
    h = ml100k.history(rows[1]["user"])
    before = [i for i in range(h.start, h.stop) if ml100k.inter_time[i] < when][-3:]
    memory = rows[1]["prompt"].split("oldest first:\n", 1)[1].split("\n")[:3]
    assert all(line.startswith("- " + builder.item_names[int(ml100k.inter_item[i])] + ";") for line, i in zip(memory, before))
    assert len(before) == 3 or "nothing yet" in memory[0]


def test_group_triples_fall_back_to_the_user(builder, scene_and_labels):
    scene, labels = scene_and_labels
    rows = group_triples(builder, scene, [], np.random.default_rng(0), labels)
    assert [r["role"] for r in rows[:3]] == list(ROLES)
    assert rows[0]["prompt"] == rows[1]["prompt"] == rows[2]["prompt"]
    assert {r["user"] for r in rows} == {scene.user}
