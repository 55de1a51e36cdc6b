"""GA-GRPO: group advantages by hand, and the sampler keeps (user, similar, group) triples together."""

import math

import pytest
import torch

from simulators.training.group_grpo import ROLES, TripleRepeatSampler, group_advantages


def test_group_advantages_match_hand_computed_values():
    # one triple, 2 generations: R_T = [1, 0], R_S = [1, 1], R_G = [0, 0]; W = (1, 0.5, 0.25)
    adv = group_advantages(torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0, 0.0]), 2, (1.0, 0.5, 0.25), eps=0.0)
    weighted = [1.0, 0.0, 0.5, 0.5, 0.0, 0.0]
    mean = sum(weighted) / 6
    std = math.sqrt(sum((x - mean) ** 2 for x in weighted) / 5)  # unbiased, as TRL's nanstd
    assert adv.tolist() == pytest.approx([(x - mean) / std for x in weighted])
    assert adv[0].item() == pytest.approx((2 / 3) / math.sqrt(1 / 6))


def test_group_advantages_per_triple_nan_and_unscaled():
    rewards = torch.tensor([1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 2.0, 0.0, float("nan"), 2.0, 0.0, 2.0])
    adv = group_advantages(rewards, 2, (1.0, 1.0, 1.0), scale=False)
    assert adv[:6].tolist() == [0.0] * 6  # a triple where everything agrees carries no signal
    mean = (2 + 0 + 2 + 0 + 2) / 5  # the NaN completion is left out of the baseline ...
    assert adv[6:].tolist() == pytest.approx([2 - mean, -mean, 0.0, 2 - mean, -mean, 2 - mean])  # ... and gets 0
    with pytest.raises(ValueError, match="multiple of 3 x num_generations"):
        group_advantages(torch.zeros(8), 2, (1.0, 1.0, 1.0))


def test_sampler_keeps_triples_whole_and_ordered():
    data = list(range(12))  # 4 triples
    sampler = TripleRepeatSampler(data, mini_repeat_count=2, batch_size=6, repeat_count=1, shuffle=True, seed=3)
    out = list(sampler)
    assert len(out) == len(sampler) == 24
    triples = [out[i : i + 6 : 2] for i in range(0, 24, 6)]  # every index repeated twice in a row
    assert all(out[i] == out[i + 1] for i in range(0, 24, 2))
    for t in triples:
        assert t[0] % 3 == 0 and t == [t[0], t[0] + 1, t[0] + 2]
    assert sorted(t[0] // 3 for t in triples) == [0, 1, 2, 3]
    assert len(ROLES) == 3
    with pytest.raises(ValueError, match="multiples of 3"):
        TripleRepeatSampler(data, 2, batch_size=4)


def _length_parity(completions, **kwargs):
    """Test double: a reward that varies on a random model's garbage, so advantages are non-zero."""
    return [float(len(c) % 2) for c in completions]


def test_ga_grpo_two_steps_on_a_tiny_model_change_it_and_count_malformed(tiny_llm, tmp_path):
    from datasets import Dataset
    from peft import LoraConfig
    from trl import GRPOConfig

    from simulators.training.group_grpo import GroupAwareGRPOTrainer
    from simulators.training.rewards import reward_functions

    rows = []
    for t in range(4):
        for role in ROLES:
            rows.append({"prompt": f"{role} {t}: watch or skip item {t}?", "role": role, "judge": "skip" if t % 2 else "watch",
                         "choice": None, "reason": None, "reason_text": None})
    funcs, weights = reward_functions("gagrpo")
    args = GRPOConfig(
        output_dir=str(tmp_path / "grpo"), use_cpu=True, bf16=False, max_steps=2, per_device_train_batch_size=6,
        num_generations=2, generation_batch_size=6, max_completion_length=8, learning_rate=5e-2, beta=0.0,
        logging_steps=1, save_strategy="no", report_to=[], seed=0, reward_weights=[*weights, 1.0],
    )
    trainer = GroupAwareGRPOTrainer(
        model=tiny_llm, reward_funcs=[*funcs, _length_parity], args=args, train_dataset=Dataset.from_list(rows),
        peft_config=LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]), role_weights=(1.0, 0.5, 0.25),
    )
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
    trainer.train()
    after = dict(trainer.model.named_parameters())
    assert any(not torch.equal(before[n], after[n].detach()) for n in before)
    fmt = funcs[0]
    assert fmt.seen == 2 * 6 and fmt.malformed == fmt.seen  # a random model writes no valid answer: counted, no crash
    assert trainer.state.log_history[0]["rewards/format/mean"] == 0.0
    assert "group_advantage_std" in trainer.state.log_history[0]
