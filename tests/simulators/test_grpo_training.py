"""GRPO with each reward design: 2 steps on the tiny model change it, log every reward component, resume."""

import json

import pytest

from simulators.training.trainers import SimulatorGRPOConfig, grpo_rows, train_grpo

GROUPS = "benchmarks/results/groups_ml100k_interest.json"


def _length_parity(completions, **kwargs):
    """Test double: a reward that varies on a random model's garbage, so advantages are non-zero."""
    return [float(len(c) % 2) for c in completions]


def _lora(path):
    from safetensors.torch import load_file

    return load_file(str(path / "adapter_model.safetensors"))


@pytest.mark.parametrize("design", ["plain", "sgrpo", "gagrpo", "vragent"])
def test_grpo_two_steps_change_the_adapter_and_log_each_reward(design, tiny_llm, tmp_path):
    batch = 6 if design == "gagrpo" else 4
    cfg = SimulatorGRPOConfig(
        output_dir=str(tmp_path / design), model=tiny_llm, rewards=design, groups=GROUPS, max_steps=2, batch_size=batch,
        num_generations=2, max_completion_length=8, learning_rate=5e-2, save_steps=1, warmup_steps=0, lora_r=4,
    )
    out = train_grpo(cfg, extra_rewards=[_length_parity])
    card = json.loads((out / "training_card.json").read_text())
    assert card["kind"] == "grpo" and card["steps"] == 2 and card["config"]["rewards"] == design
    curves = card["reward_curves"]
    names = {"plain": ["format", "judge", "choice", "reason"], "sgrpo": ["format", "stepwise"],
             "gagrpo": ["format", "judge", "choice"], "vragent": ["format", "judge", "choice"]}[design]
    for name in names + ["_length_parity"]:
        assert f"rewards/{name}/mean" in curves
    assert curves["rewards/format/mean"][-1][1] == 0.0 and curves["malformed"][-1][1] == 1.0  # counted, no crash
    assert any(w.abs().sum() > 0 for k, w in _lora(out).items() if "lora_B" in k)  # LoRA B starts at 0: it moved
    # a rerun with more steps resumes from the newest checkpoint
    out = train_grpo(SimulatorGRPOConfig(**{**cfg.__dict__, "max_steps": 3}), extra_rewards=[_length_parity])
    card = json.loads((out / "training_card.json").read_text())
    assert card["resumed_from"] == "checkpoint-2" and card["steps"] == 3


def test_grpo_rows_follow_the_design(ml100k, tokenizer):
    cfg = SimulatorGRPOConfig(model="smollm2-135m", rewards="gagrpo", groups=GROUPS, max_steps=2, batch_size=6,
                              num_generations=2, feed_fraction=0.5)
    rows, counts = grpo_rows(ml100k, tokenizer, cfg)
    assert len(rows) == cfg.n_prompts == 6 and [r["role"] for r in rows] == ["user", "similar", "group"] * 2
    assert counts["feed"] + counts["choice"] == 2
    rows, _ = grpo_rows(ml100k, tokenizer, SimulatorGRPOConfig(**{**cfg.__dict__, "no_group_profiles": True}))
    assert rows[2]["prompt"] == rows[0]["prompt"]
    rows, counts = grpo_rows(ml100k, tokenizer, SimulatorGRPOConfig(rewards="sgrpo", max_steps=3, batch_size=4, num_generations=2))
    assert len(rows) == 6 and set(counts) == {"feed"} and all(r["judge"] in ("skip", "watch") for r in rows)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(rewards="dpo"), "rewards must be one of"),
        (dict(num_generations=1), "num_generations must be >= 2"),
        (dict(batch_size=6, num_generations=4), "multiple of 4"),
        (dict(rewards="gagrpo", batch_size=8, num_generations=2, groups=GROUPS), "multiple of 6"),
        (dict(rewards="gagrpo", batch_size=6, num_generations=2), "recsim build-groups"),
        (dict(role_weights=(1.0, -1.0, 0.5)), "non-negative"),
        (dict(temperature=0.0), "temperature must be > 0"),
        pytest.param(dict(use_vllm=True), "needs the vllm package", marks=pytest.mark.skipif(
            __import__("importlib").util.find_spec("vllm") is not None, reason="vllm installed here")),
    ],
)
def test_grpo_config_errors_say_how_to_fix(kwargs, match):
    with pytest.raises((ValueError, FileNotFoundError), match=match):
        SimulatorGRPOConfig(**kwargs)


def test_cli_grpo_refuses_gagrpo_without_groups(tmp_path):
    from recsim_cli import main

    with pytest.raises(SystemExit, match="recsim build-groups"):
        main(["train-simulator", "grpo", "--out", str(tmp_path / "x"), "--rewards", "gagrpo", "--batch-size", "12"])
