"""GRPO reward functions on hand-made completions, against hand-computed values."""

import pytest

from simulators.training.rewards import (
    Answer, ChoiceReward, FormatReward, JudgeReward, MalformedCompletion, ReasonReward, RewardConfig, StepwiseReward,
    parse_completion, reward_functions, rouge_mean,
)

SKIP_B = "<think>Too slow for me tonight.</think><answer>Judge: skip; Reason: [B]</answer>"
WATCH = "<think>I love westerns.</think>\n<answer>Judge: watch</answer>"
CHOICE_C = "<think>C fits.</think><answer>Choice: [C]</answer>"


def test_parse_valid_forms():
    assert parse_completion(SKIP_B) == Answer("Too slow for me tonight.", judge="skip", reason=1)
    assert parse_completion(WATCH).positive is True
    assert parse_completion("  <think></think><answer>Judge: Like\nChoice: [A]</answer>\n") == Answer("", "like", 0)
    assert parse_completion(CHOICE_C, n_options=3).choice == 2


@pytest.mark.parametrize(
    "text, why",
    [
        ("Judge: skip", "expected '<think>"),
        ("<think>x</think>", "expected '<think>"),
        ("<answer>Judge: skip</answer>", "expected '<think>"),
        ("hello <think>x</think><answer>Judge: skip</answer>", "expected '<think>"),
        ("<think>x</think><answer>Judge: maybe</answer>", "judge 'maybe'"),
        ("<think>x</think><answer>Choice: C</answer>", "bracketed capital letter"),
        ("<think>x</think><answer>Judge: skip; Judge: watch</answer>", "given twice"),
        ("<think>x</think><answer>I skip it</answer>", "unreadable answer field"),
        ("<think>x</think><answer> </answer>", "no field"),
        ("<think>x</think><answer>Choice: [F]</answer>", "beyond the 5 letters"),
        ("<think>x</think><answer>Reason: [D]</answer>", "beyond the 3 letters"),
        ("<think>a<think>b</think><answer>Judge: skip</answer>", "nested"),
    ],
)
def test_parse_rejects_malformed_with_a_reason(text, why):
    with pytest.raises(MalformedCompletion, match=why):
        parse_completion(text, n_options=5, n_reasons=3)


def test_rouge_mean_matches_hand_computed_values():
    # R1: 2 of 3 unigrams -> F 2/3; R2: 1 of 2 bigrams -> 1/2; RL: LCS "the cat" -> 2/3
    assert rouge_mean("The cat sat.", "the cat ran") == pytest.approx((2 / 3 + 1 / 2 + 2 / 3) / 3)
    assert rouge_mean("same words here", "Same words, here!") == pytest.approx(1.0)
    assert rouge_mean("nothing alike", "totally different") == 0.0
    assert rouge_mean("", "x") == 0.0
    # LCS in order only: "a b c d" vs "d c b a": LCS 1 -> 1/4; no shared bigram
    assert rouge_mean("a b c d", "d c b a") == pytest.approx((1.0 + 0.0 + 0.25) / 3)


def test_format_reward_counts_malformed_and_logs_the_fraction():
    logged = []
    fmt = FormatReward(1.0)
    out = fmt(prompts=["p"] * 4, completions=[SKIP_B, "garbage", WATCH, [{"role": "assistant", "content": CHOICE_C}]],
              log_metric=lambda name, v: logged.append((name, v)))
    assert out == [1.0, 0.0, 1.0, 1.0]
    assert (fmt.malformed, fmt.seen) == (1, 4)
    assert logged == [("malformed", 0.25)]


def test_task_rewards_on_hand_made_batch():
    completions = [SKIP_B, WATCH, "garbage", CHOICE_C]
    cols = dict(judge=["skip", "skip", "watch", None], choice=[None, None, 1, 2], reason=[1, 0, None, -1],
                n_options=[None, None, 5, 5])
    assert JudgeReward()(completions=completions, **cols) == [1.0, 0.0, 0.0, None]
    assert JudgeReward(1.0, -1.0)(completions=completions, **cols) == [1.0, -1.0, -1.0, None]
    assert ChoiceReward(2.0)(completions=completions, **cols) == [None, None, 0.0, 2.0]
    assert ReasonReward()(completions=completions, **cols) == [1.0, 0.0, None, None]
    # like/dislike use the same polarity as watch/skip
    assert JudgeReward()(completions=["<think></think><answer>Judge: dislike</answer>"], judge=["skip"]) == [1.0]


def test_stepwise_reward_gates_each_step():
    r = StepwiseReward(judge=0.5, reason=1.0, text=1.0)
    think = "<think>{}</think><answer>Judge: {}; Reason: [{}]</answer>"
    completions = [
        think.format("x", "watch", "A"),  # judge wrong: 0
        think.format("x", "skip", "A"),  # judge right, reason wrong: stop at 0.5
        think.format("the cat sat", "skip", "B"),  # judge, reason right, text scored
        think.format("x", "watch", "A"),  # positive truth, judge right: stop at 0.5
        think.format("x", "skip", "B"),  # reason right, no real reason text: 1.5
        "no tags",  # malformed: 0
    ]
    cols = dict(judge=["skip", "skip", "skip", "watch", "skip", "skip"], reason=[1, 1, 1, None, 1, 1],
                reason_text=[None, "x", "the cat ran", None, "", "y"])
    out = r(completions=completions, **cols)
    assert out[:2] == [0.0, 0.5]
    assert out[2] == pytest.approx(1.5 + (2 / 3 + 1 / 2 + 2 / 3) / 3)
    assert out[3:] == [0.5, 1.5, 0.0]


def test_reward_designs_and_config():
    funcs, weights = reward_functions("sgrpo", RewardConfig(task_weight=2.0))
    assert [f.__name__ for f in funcs] == ["format", "stepwise"] and weights == [1.0, 2.0]
    funcs, _ = reward_functions("vragent")
    out = [f(completions=["<think></think><answer>Judge: like; Choice: [B]</answer>"], judge=["dislike"], choice=[1])
           for f in funcs]
    assert out == [[1.0], [-1.0], [2.0]]
    assert [f.__name__ for f in reward_functions("gagrpo")[0]] == ["format", "judge", "choice"]
    with pytest.raises(ValueError, match="sgrpo"):
        reward_functions("grpo-ish")
    with pytest.raises(ValueError, match="step_judge"):
        RewardConfig(step_judge="high")
