"""Decision heads: they learn a planted item signal, their caches cannot go stale, nothing leaks, they load safely."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest

import recsim_env  # noqa: F401  (registers RecSimEnv-v0)
from recsim_env.data import load_dataset
from recsim_env.features import item_features, item_stats_without
from simulators.llm import LLMUserSimulator
from simulators.llm.heads import DecisionHeads, HeadMismatchError, cue_features, item_states, item_states_path
from simulators.training.heads import SimulatorHeadsConfig, head_examples, train_heads

from tests.conftest import write_atomic

TINY = dict(pools=("final",), hidden=(0,), cuts_per_user=4, positives=2, uniform_negatives=2, popular_negatives=1,
            memory=10, min_history=3, steps=60, eval_every=20, lr=0.05, history_in_prompt=3)


def planted_dataset(folder, n_users: int = 80, n_items: int = 40, title: str = "Film"):
    """Users watch mostly the "Loved" half of the catalogue (its genre word is the only signal), rated 4-5."""
    rng = np.random.default_rng(0)
    loved = np.arange(0, n_items, 2)
    inter = ["user_id:token\titem_id:token\trating:float\ttimestamp:float"]
    for u in range(n_users):
        items = np.concatenate([rng.choice(loved, 9, replace=False), rng.choice(np.arange(1, n_items, 2), 1)])
        for t, i in enumerate(rng.permutation(items)):
            inter.append(f"u{u}\ti{i}\t{int(rng.integers(4, 6)) if i % 2 == 0 else 1}\t{1000 + 10 * t}")
    genre = {0: "Loved", 1: "Ignored"}
    items = ["item_id:token\tmovie_title:token_seq\tclass:token_seq"] + [
        f"i{i}\t{title} {i}\t{genre[i % 2]}" for i in range(n_items)
    ]
    return write_atomic(folder, "planted", {"inter": "\n".join(inter), "item": "\n".join(items)})


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RECSIM_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def planted(tmp_path):
    return load_dataset(str(planted_dataset(tmp_path)))


def test_heads_learn_a_planted_item_signal_and_beat_chance_on_held_out_users(tiny_llm, planted, cache, tmp_path):
    config = SimulatorHeadsConfig(model=tiny_llm, inputs=("llm",), **TINY)
    card = train_heads(config, tmp_path / "heads", planted, progress=False)
    assert card["selection"][card["chosen"]]["like_auc"] > 0.8  # valid users: chosen there
    assert (tmp_path / "heads" / "CARD.md").is_file() and (tmp_path / "heads" / "heads.safetensors").is_file()
    sim = LLMUserSimulator(model=tiny_llm, dtype="float32", dataset=planted, heads=str(tmp_path / "heads"))
    ex = head_examples(planted, "test", config)  # held-out users, never seen in training or selection
    outputs = sim.head_outputs(ex["requests"])
    skip, interest = np.stack([o["skip"] for o in outputs]), np.stack([o["interest"] for o in outputs])
    both = ex["real"] | ex["uniform"]
    from benchmarks.fidelity import roc_auc

    loved = np.array([[i % 2 == 0 for i in r.slate] for r in ex["requests"]])
    oracle = roc_auc(loved[both].astype(float), ex["real"][both])  # the planted signal's own ceiling (~0.75: many unseen items are loved too)
    auc = roc_auc(interest[both], ex["real"][both])
    assert auc > 0.65 and auc > 0.9 * oracle  # chance: 0.5
    assert roc_auc(1 - skip[both], ex["real"][both]) > 0.6  # lower: a real "Ignored" item rated 1 is a real fast skip
    # the item signal itself: loved items are judged better than ignored ones for every test user
    assert skip[:, :][np.asarray([[i % 2 == 0 for i in r.slate] for r in ex["requests"]])].mean() < \
        skip[np.asarray([[i % 2 == 1 for i in r.slate] for r in ex["requests"]])].mean()
    # a rerun resumes: every candidate is read back, not retrained
    again = train_heads(config, tmp_path / "heads", planted, progress=False)
    assert again["selection"] == card["selection"]


def test_item_state_cache_is_keyed_by_model_adapter_prompt_and_content(tiny_llm, planted, cache, tmp_path, monkeypatch):
    sim = LLMUserSimulator(model=tiny_llm, dtype="float32", dataset=planted)
    first = item_states(sim)
    path = item_states_path(sim)
    assert path.is_file() and np.array_equal(np.load(path), first)
    # another dataset content (a title changed) -> another key
    other = load_dataset(str(planted_dataset(tmp_path / "b", title="Movie")))
    assert item_states_path(sim.bind(other)) != path
    sim.bind(planted)
    assert item_states_path(sim) == path
    # another prompt version -> another key
    import simulators.llm.heads as heads_module

    monkeypatch.setattr(heads_module, "PROMPT_VERSION", "feed-judge-test")
    assert item_states_path(sim) != path
    monkeypatch.undo()
    # another adapter (weights differ) -> another key
    from peft import LoraConfig, get_peft_model

    adapters = []
    for seed in (0, 1):
        import torch
        from transformers import AutoModelForCausalLM

        torch.manual_seed(seed)
        peft = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_llm), LoraConfig(r=2, target_modules=["q_proj"], init_lora_weights=False))
        peft.save_pretrained(tmp_path / f"adapter{seed}")
        adapters.append(str(tmp_path / f"adapter{seed}"))
    keys = {item_states_path(LLMUserSimulator(model=tiny_llm, adapter=a, dtype="float32", dataset=planted)) for a in adapters}
    assert len(keys) == 2 and path not in keys


def test_no_label_leakage_into_heads_inputs(planted, tiny_llm, cache):
    ds = planted
    u = int(ds.users("train")[0])
    h = ds.history(u)
    own = ds.inter_item[h]
    count, mean = item_stats_without(ds, u, own)
    full = item_features(ds)
    assert np.all(count == full.count[own] - 1)  # the user's own interaction is left out of every count
    test_user = int(ds.users("test")[0])
    c2, m2 = item_stats_without(ds, test_user, own)
    assert np.array_equal(c2, full.count[own]) and np.allclose(m2, full.mean_rating[own])
    # a train user whose own rating is the item's only rating: its mean falls back to the prior
    sole = np.flatnonzero(full.count == 1)
    if len(sole):
        i = int(sole[0])
        rater = int(ds.inter_user[np.flatnonzero(ds.inter_item == i)[0]])
        if ds.split[rater] == ds.SPLITS["train"]:
            assert item_stats_without(ds, rater, np.array([i]))[0][0] == 0
    # the cues of a train user's real next items equal those computed with the user removed from the data
    from simulators.fitted import FittedUserModel
    from simulators.base import SimulationRequest

    fitted = FittedUserModel.fit(ds)
    req = SimulationRequest.from_history(ds, u, 5, own[5:8], "feed", 10)
    cues = cue_features(fitted, [req], own[None, 5:8])[0]
    top = np.log1p(full.count.max())
    assert np.allclose(cues[:, 2], np.log1p(full.count[own[5:8]] - 1) / top, atol=1e-6)
    # the language model reads item lines without any statistics, and never the target's rating or time
    sim = LLMUserSimulator(model=tiny_llm, dtype="float32", dataset=ds)
    assert not any("viewers" in t or "avg" in t for t in sim.scenes.item_names)


def test_heads_simulator_same_seed_same_trajectory(tiny_llm, planted, cache, tmp_path):
    train_heads(SimulatorHeadsConfig(model=tiny_llm, **TINY), tmp_path / "heads", planted, progress=False)
    kwargs = {"model": tiny_llm, "dtype": "float32", "heads": str(tmp_path / "heads")}
    runs = []
    for mode in ("feed", "page"):
        for _ in range(2):
            env = gym.make("RecSimEnv-v0", dataset=str(planted_dataset(tmp_path / "env")), simulator="llm",
                           simulator_kwargs=kwargs, feedback_mode=mode, slate_size=3)
            obs, _ = env.reset(seed=3)
            actions = np.random.default_rng(5)
            trace = []
            for t in range(4):
                obs, r, term, trunc, info = env.step(actions.choice(40, 3, replace=False))
                trace.append((r, info["feedback"]["skipped"].tolist(), info["feedback"]["rating"].tolist()))
                if term or trunc:
                    break
            runs.append(repr(trace))
    assert runs[0] == runs[1] and runs[2] == runs[3]


def test_heads_load_with_their_model_and_fail_clearly_when_mismatched(tiny_llm, planted, cache, tmp_path):
    train_heads(SimulatorHeadsConfig(model=tiny_llm, **TINY), tmp_path / "heads", planted, progress=False)
    heads = DecisionHeads.load(tmp_path / "heads")
    assert heads.spec.model == tiny_llm and heads.spec.inputs == ("llm", "cues")
    with pytest.raises(HeadMismatchError, match="model 'smollm2-135m'"):
        heads.check("smollm2-135m", None, 3, "letters")
    with pytest.raises(HeadMismatchError, match="history_in_prompt"):
        LLMUserSimulator(model=tiny_llm, dtype="float32", dataset=planted, heads=str(tmp_path / "heads"), history_in_prompt=7)
    fake = tmp_path / "other-adapter"
    fake.mkdir()
    (fake / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 4}))
    (fake / "adapter_model.safetensors").write_bytes(b"other weights")
    with pytest.raises(HeadMismatchError, match="adapter"):
        heads.check(tiny_llm, str(fake), 3, "letters")
    with pytest.raises(HeadMismatchError, match="answer_format 'think'"):
        heads.check(tiny_llm, None, 3, "think")
    heads.check(tiny_llm, None, 3, "letters")  # its own setting passes
    with pytest.raises(FileNotFoundError, match="heads.json"):
        DecisionHeads.load(tmp_path / "nothing-here")
    with pytest.raises(ValueError, match="inputs must be"):
        SimulatorHeadsConfig(inputs=("words",))
