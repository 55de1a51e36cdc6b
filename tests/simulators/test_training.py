"""SFT / DPO of the LLM simulator with TRL: examples in the simulator's own format; 2 steps on a tiny model change it."""

import json

import numpy as np
import pytest
from safetensors.numpy import load_file

from simulators.llm import LLMUserSimulator
from simulators.llm.prompts import ChatFormat, SceneBuilder
from simulators.training.examples import choice_example, feed_examples
from simulators.training.labels import ReasonLabel
from simulators.training.scenes import SceneConfig, choice_scenes, feed_scenes
from simulators.training.trainers import SimulatorDPOConfig, SimulatorSFTConfig, sft_examples, train_dpo, train_sft


@pytest.fixture(scope="module")
def builder(ml100k, tokenizer):
    return SceneBuilder(ml100k, ChatFormat(tokenizer))


def test_choice_example_is_the_simulators_page_prompt_and_the_real_answer(ml100k, builder):
    scene = choice_scenes(ml100k, "train", SceneConfig(per_user=1))[3]
    ex = choice_example(builder, scene)
    question, _ = builder.page_branch(scene.request)
    assert ex["prompt"] == builder.system() + builder.context(scene.request) + question
    assert ex["prompt"].endswith("Behavior: [")
    idx = ml100k.history(scene.user).start + scene.position
    rating = int(ml100k.inter_rating[idx])
    assert ex["completion"] == f"{'ABCDEFGHIJKL'[scene.target]}] Rating: [{'ABCDE'[rating - 1]}]"


def test_feed_examples_judge_then_reason_or_rating(ml100k, builder):
    scene = next(s for s in feed_scenes(ml100k, "train", SceneConfig(per_user=2)) if s.skipped.any() and (~s.skipped).any())
    labels = [ReasonLabel("user-driven", "test") if s else None for s in scene.skipped]
    rows = feed_examples(builder, scene, labels)
    assert len(rows) == len(scene.request.slate)
    for k, row in enumerate(rows):
        assert row["prompt"].endswith("Judge: [")
        if scene.skipped[k]:
            assert row["completion"] == "B] Reason: [C]"
        else:
            assert row["completion"] == f"A] Rating: [{'ABCDE'[int(scene.rating[k]) - 1]}]"
    unlabelled = feed_examples(builder, scene, None)
    assert {r["completion"] for k, r in enumerate(unlabelled) if scene.skipped[k]} == {"B]"}


def test_sft_examples_are_seeded_and_mixed(ml100k, tokenizer):
    cfg = SimulatorSFTConfig(max_steps=2, batch_size=4, feed_fraction=0.5)
    a, counts = sft_examples(ml100k, tokenizer, cfg)
    b, _ = sft_examples(ml100k, tokenizer, cfg)
    assert a == b and len(a) == 8 and counts == {"choice": 4, "feed": 4}
    assert sum(e["prompt"].endswith("Judge: [") for e in a) == 4


def test_think_format_examples_are_grpo_prompts_with_the_real_answer(ml100k, tokenizer):
    from simulators.training.rewards import parse_completion

    cfg = SimulatorSFTConfig(max_steps=2, batch_size=5, feed_fraction=0.6, answer_format="think", history_in_prompt=3)
    rows, counts = sft_examples(ml100k, tokenizer, cfg)
    assert counts == {"feed": 6, "choice": 4} and len(rows) == 10
    for r in rows:
        answer = parse_completion(r["completion"], n_options=13, n_reasons=3)
        assert answer.think == "" and "<think>...</think><answer>" in r["prompt"]  # the prompt shows the format
        assert (answer.judge is None) == (answer.choice is not None)
    with pytest.raises(ValueError, match="answer_format"):
        SimulatorSFTConfig(answer_format="xml")
    with pytest.raises(ValueError, match="drop rationales"):
        SimulatorSFTConfig(answer_format="think", unchosen_fraction=0.5)


def test_unchosen_options_become_skipped_feed_items(ml100k, tokenizer, builder):
    from simulators.training.examples import unchosen_example

    cfg = SimulatorSFTConfig(max_steps=2, batch_size=5, feed_fraction=0.8, unchosen_fraction=0.5)
    rows, counts = sft_examples(ml100k, tokenizer, cfg)
    assert counts == {"choice": 2, "unchosen": 4, "feed": 4}
    scene = choice_scenes(ml100k, "train", SceneConfig(per_user=1))[0]
    other = (scene.target + 1) % len(scene.options)
    ex = unchosen_example(builder, scene, other)
    assert ex["completion"] == "B]" and ex["prompt"].endswith(builder.feed_branch(int(scene.options[other])))
    with pytest.raises(ValueError, match="real choice"):
        unchosen_example(builder, scene, scene.target)


def test_unchosen_sources_restrict_the_skipped_items_to_never_interacted_ones(ml100k, tokenizer):
    from simulators.training.examples import passed_over_option

    scenes = choice_scenes(ml100k, "train", SceneConfig(per_user=1))[:20]
    rng = np.random.default_rng(0)
    with_random = [s for s in scenes if "random" in s.sources]
    assert 0 < len(with_random) < len(scenes)  # training scenes have 2-12 options: some lack a random one
    for s in with_random:
        j = passed_over_option(s, rng, ("random",))
        assert j is not None and j != s.target and s.sources[j] == "random"
        consumed = set(ml100k.inter_item[ml100k.history(s.user)].tolist())
        assert int(s.options[j]) not in consumed
    assert all(passed_over_option(s, rng, ("random",)) is None for s in scenes if "random" not in s.sources)
    cfg = SimulatorSFTConfig(max_steps=2, batch_size=5, feed_fraction=0.8, unchosen_fraction=0.5, unchosen_sources=("random",))
    rows, counts = sft_examples(ml100k, tokenizer, cfg)
    assert counts["unchosen"] == 4 and sum(r["completion"] == "B]" and r["prompt"].endswith("Judge: [") for r in rows) >= 4
    with pytest.raises(ValueError, match="unchosen_sources must be None or a non-empty subset"):
        SimulatorSFTConfig(unchosen_sources=("popular",))


def test_config_errors_say_what_to_do(tmp_path):
    with pytest.raises(ValueError, match="max_steps must be >= 1"):
        SimulatorSFTConfig(max_steps=0)
    with pytest.raises(FileNotFoundError, match="not a PEFT adapter directory"):
        SimulatorSFTConfig(init_adapter=str(tmp_path))
    with pytest.raises(FileNotFoundError, match="DPO needs a JSONL"):
        SimulatorDPOConfig(pairs=str(tmp_path / "missing.jsonl"))
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": "p", "chosen": "", "rejected": "r"}) + "\n")
    with pytest.raises(ValueError, match="non-empty string 'prompt', 'chosen' and 'rejected'"):
        train_dpo(SimulatorDPOConfig(pairs=str(bad), output_dir=str(tmp_path / "o")))


def _lora_b(path):
    w = load_file(str(path / "adapter_model.safetensors"))
    return {k: v for k, v in w.items() if "lora_B" in k}


@pytest.fixture(scope="module")
def sft_adapter(tmp_path_factory, tiny_llm):
    out = tmp_path_factory.mktemp("sft")
    cfg = SimulatorSFTConfig(output_dir=str(out), model=tiny_llm, max_steps=2, batch_size=2, warmup_steps=0, save_steps=1)
    return train_sft(cfg)


def test_sft_two_steps_change_the_adapter_write_a_card_and_resume(sft_adapter, tiny_llm, ml100k):
    b = _lora_b(sft_adapter)
    assert b and all(np.abs(v).max() > 0 for v in b.values())  # LoRA B starts at zero
    card = json.loads((sft_adapter / "training_card.json").read_text())
    assert card["steps"] == 2 and card["data"] == {"choice": 2, "feed": 2} and len(card["loss_curve"]) == 2
    assert "SFT adapter" in (sft_adapter / "TRAINING_CARD.md").read_text()
    assert sorted(p.name for p in (sft_adapter / "checkpoints").glob("checkpoint-*")) == ["checkpoint-1", "checkpoint-2"]
    # a rerun with a longer schedule resumes from checkpoint-2 instead of starting over
    cfg = SimulatorSFTConfig(output_dir=str(sft_adapter), model=tiny_llm, max_steps=3, batch_size=2, warmup_steps=0, save_steps=1)
    train_sft(cfg)
    card = json.loads((sft_adapter / "training_card.json").read_text())
    assert card["resumed_from"] == "checkpoint-2" and card["steps"] == 3
    sim = LLMUserSimulator(model=tiny_llm, adapter=str(sft_adapter), dtype="float32", dataset=ml100k, min_option_mass=0.0)
    base = LLMUserSimulator(model=tiny_llm, dtype="float32", dataset=ml100k, min_option_mass=0.0)
    scene = choice_scenes(ml100k, "test", SceneConfig(per_user=1), evaluation=True)[0]
    rng = [np.random.default_rng(0)]
    p_tuned = sim.respond([scene.request], rng)[0].choice_probs
    p_base = base.respond([scene.request], [np.random.default_rng(0)])[0].choice_probs
    assert not np.allclose(p_tuned, p_base)


def test_export_keeps_what_a_user_needs(sft_adapter, tmp_path, tiny_llm, ml100k):
    from simulators.training.trainers import export_adapter

    out = export_adapter(sft_adapter, tmp_path / "exported")
    assert sorted(p.name for p in out.iterdir()) == ["TRAINING_CARD.md", "adapter_config.json", "adapter_model.safetensors", "training_card.json"]
    from safetensors.torch import load_file

    assert {str(v.dtype) for v in load_file(str(out / "adapter_model.safetensors")).values()} == {"torch.bfloat16"}
    assert json.loads((out / "training_card.json").read_text())["exported"]["dtype"] == "bfloat16"
    sim = LLMUserSimulator(model=tiny_llm, adapter=str(out), dtype="float32", dataset=ml100k, min_option_mass=0.0)
    assert sim.history_in_prompt == sim.scenes.history_in_prompt == 10  # as trained (the card's config)
    card = json.loads((out / "training_card.json").read_text())
    card["config"]["history_in_prompt"] = 3
    (out / "training_card.json").write_text(json.dumps(card))
    assert LLMUserSimulator(model=tiny_llm, adapter=str(out), dtype="float32", dataset=ml100k).scenes.history_in_prompt == 3
    explicit = LLMUserSimulator(model=tiny_llm, adapter=str(out), dtype="float32", dataset=ml100k, history_in_prompt=5)
    assert explicit.scenes.history_in_prompt == 5  # an explicit setting wins over the card
    with pytest.raises(FileNotFoundError, match="not an adapter trained here"):
        export_adapter(tmp_path, tmp_path / "x")


def test_dpo_two_steps_change_the_starting_adapter(sft_adapter, tiny_llm, tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    rows = [{"prompt": f"User {i} sees [A] Heat [B] Babe. Behavior: [", "chosen": "A]", "rejected": "B]"} for i in range(4)]
    pairs.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = SimulatorDPOConfig(
        output_dir=str(tmp_path / "dpo"), model=tiny_llm, init_adapter=str(sft_adapter), pairs=str(pairs),
        max_steps=2, batch_size=2, warmup_steps=0, learning_rate=1e-3,
    )
    out = train_dpo(cfg)
    before, after = _lora_b(sft_adapter), _lora_b(out)
    assert before.keys() == after.keys()
    assert any(not np.allclose(before[k], after[k]) for k in before)
    card = json.loads((out / "training_card.json").read_text())
    assert card["data"] == {"pairs": 4}
    # the card carries the stage it started from (the SFT run), and says so in the readable card
    assert card["init_card"]["kind"] == "sft" and card["init_card"]["data"] == json.loads((sft_adapter / "training_card.json").read_text())["data"]
    assert "loss_curve" not in card["init_card"]
    assert f"started from `{sft_adapter}`: SFT of {card['init_card']['steps']} steps" in (out / "TRAINING_CARD.md").read_text()


def test_cli_train_simulator_explains_bad_input(tmp_path):
    from recsim_cli import main

    with pytest.raises(SystemExit, match="train-simulator dpo: pairs=.*DPO needs a JSONL"):
        main(["train-simulator", "dpo", "--out", str(tmp_path / "o"), "--pairs", str(tmp_path / "none.jsonl")])
    with pytest.raises(SystemExit, match="feed_fraction must be in"):
        main(["train-simulator", "sft", "--out", str(tmp_path / "o"), "--feed-fraction", "2"])
