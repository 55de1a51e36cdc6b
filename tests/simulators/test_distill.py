"""Distillation ranks, filters and pairs exactly as documented (hand-made case), and runs end to end on a tiny model."""

import numpy as np
import pytest

from simulators.llm import LLMUserSimulator
from simulators.training.distill import DistillConfig, Rationale, SceneRationales, distill, entropy, is_decision_process, select
from simulators.training.scenes import SceneConfig, choice_scenes


def R(text, *p):
    return Rationale(text, np.array(p))


def test_entropy_hand_computed():
    assert entropy(np.array([0.5, 0.5, 0.0])) == pytest.approx(np.log(2))
    assert entropy(np.array([1.0, 0.0])) == 0.0


def test_select_ranks_filters_and_pairs_as_specified():
    a = SceneRationales("A", 0, [R("a-t1", .9, .05, .05), R("a-t2", .5, .4, .1)], [R("a-s1", .1, .8, .1), R("a-s2", .34, .33, .33)])
    b = SceneRationales("B", 1, [R("b-t1", .8, .1, .1), R("b-t2", .1, .1, .8)], [R("b-s1", .1, .8, .1)])  # teacher never reaches 1
    c = SceneRationales("C", 2, [R("c-t1", .1, .1, .8), R("c-t2", .2, .2, .6)], [R("c-s1", .1, .1, .8), R("c-s2", .1, .1, .8)])
    d = SceneRationales("D", 1, [R("d-t1", .3, .4, .3), R("d-t2", .1, .8, .1)], [R("d-s1", .4, .3, .3), R("d-s2", .4, .3, .3)])
    h = entropy
    assert a.difficulty == pytest.approx((h([.1, .8, .1]) + h([.34, .33, .33])) / 2 - (h([.9, .05, .05]) + h([.5, .4, .1])) / 2)
    assert d.difficulty > a.difficulty > 0 > c.difficulty  # D hardest for the student, C easiest
    sft, dpo, counts = select([a, b, c, d], keep_fraction=0.5)
    assert counts == {"scenes": 4, "reachable": 3, "kept": 2, "pairs": 2, "teacher_not_a_process": 8}  # B dropped; ceil(0.5 * 3) = 2 kept: D, A
    assert [r["prompt"] for r in sft] == ["D", "A"]
    assert sft[0]["completion"] == " d-t2\nBehavior: [B]"  # lowest-entropy teacher rationale reaching the real option
    assert dpo[0]["chosen"] == " d-t2\nBehavior: [B]" and dpo[0]["rejected"] == " d-s1\nBehavior: [A]"
    # A: a-s2 reaches the real option (argmax 0), so the only wrong rationale is a-s1
    assert dpo[1]["chosen"] == " a-t1\nBehavior: [A]" and dpo[1]["rejected"] == " a-s1\nBehavior: [B]"
    sft, dpo, counts = select([c], keep_fraction=1.0)
    assert len(sft) == 1 and dpo == [] and counts["pairs"] == 0  # nobody wrong: an SFT row, no pair


def test_bare_answers_are_not_decision_processes():
    assert not is_decision_process("[A] Rating: [B]")  # what the direct-answer SFT adapter wrote as a teacher
    assert is_decision_process("Stimulus: a thriller. Knowledge: I rated thrillers 5/5. Evaluation: [A] fits.")
    s = SceneRationales("P", 0, [R("[A] Rating: [B]", .9, .1), R("Stimulus: a thriller I would watch tonight", .8, .2)], [R("x", .5, .5)])
    assert select([s], 1.0)[2]["teacher_not_a_process"] == 1


def test_config_is_checked():
    with pytest.raises(ValueError, match="keep_fraction"):
        DistillConfig(keep_fraction=0.0)


def test_distill_end_to_end_on_a_tiny_model(ml100k, tiny_llm):
    sim = LLMUserSimulator(model=tiny_llm, dtype="float32", dataset=ml100k, min_option_mass=0.0)
    scenes = choice_scenes(ml100k, "train", SceneConfig(per_user=1), evaluation=True)[:3]
    sft, dpo, counts = distill(scenes, sim, sim, sim, DistillConfig(n_rationales=2, max_new_tokens=6, keep_fraction=1.0), progress=False)
    assert counts["scenes"] == 3 and counts["kept"] == counts["reachable"] == len(sft) and len(dpo) <= len(sft)
    for row in sft:
        assert row["prompt"].endswith("Stimulus:") and "\nBehavior: [" in row["completion"]
