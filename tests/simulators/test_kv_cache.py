"""Contexts kept across steps (KVStore): the same answers as computing from scratch, at lower cost, in bounded memory."""

import dataclasses

import gymnasium as gym
import numpy as np
import pytest

from simulators.base import SimulationRequest
from simulators.llm import LLMUserSimulator
from simulators.llm.scoring import KVStore

OK_MASS = dict(min_option_mass=0.0)  # a random tiny model puts ~no mass on letters


def grown(ds, r: SimulationRequest, item: int, ratio: float) -> SimulationRequest:
    """``r`` one step later: ``item`` appended to its memory (the buffer drops its oldest), count + 1."""
    return dataclasses.replace(
        r, history_items=np.append(r.history_items[1:], item), history_watch_ratio=np.append(r.history_watch_ratio[1:], ratio),
        history_skipped=np.append(r.history_skipped[1:], ratio < ds.thresholds.skip_below),
        history_time=np.append(r.history_time[1:], np.nan), history_count=r.history_count + 1, step=r.step + 1,
    )


def steps(ml100k, mode: str, n_users: int = 3, n_steps: int = 4) -> list[list[SimulationRequest]]:
    rng = np.random.default_rng(3)
    first = [SimulationRequest.from_history(ml100k, int(u), 20, rng.choice(ml100k.n_items, 4, replace=False), mode)
             for u in rng.choice(ml100k.users("test"), n_users, replace=False)]
    out = [first]
    for t in range(1, n_steps):
        out.append([dataclasses.replace(grown(ml100k, r, int(rng.integers(ml100k.n_items)), float(rng.random())),
                                        slate=rng.choice(ml100k.n_items, 4, replace=False)) for r in out[-1]])
    return out


@pytest.mark.parametrize("mode", ["page", "feed"])
@pytest.mark.parametrize("growth", [0, 6])
def test_a_step_with_kept_contexts_equals_the_step_from_scratch(ml100k, tiny_llm, mode, growth):
    kept = LLMUserSimulator(model=tiny_llm, dtype="float32", dataset=ml100k, memory_growth=growth, cache_size=0, **OK_MASS)
    fresh = LLMUserSimulator(model=tiny_llm, dtype="float32", dataset=ml100k, memory_growth=growth, cache_size=0,
                             kv_cache_tokens=0, **OK_MASS)
    cost = {}
    for sim in (kept, fresh):
        before = sim.scorer.tokens_forwarded
        answers = [sim.respond(reqs, [np.random.default_rng(t * 10 + i) for i in range(len(reqs))])
                   for t, reqs in enumerate(steps(ml100k, mode))]
        cost[sim is kept] = sim.scorer.tokens_forwarded - before
        sim.answers = answers
    for a_step, b_step in zip(kept.answers, fresh.answers):
        for a, b in zip(a_step, b_step):
            probs = "choice_probs" if mode == "page" else "skip_probs"
            np.testing.assert_allclose(getattr(a, probs), getattr(b, probs), atol=1e-5)
            for key in ("clicked", "skipped", "rating"):
                np.testing.assert_array_equal(getattr(a, key), getattr(b, key))
    store = kept.scorer.kv_store
    assert store.reused > 0 and len(store) == 3
    if growth:  # append-only memory: every later context extends the kept one, so most of it is not recomputed
        assert cost[True] < 0.8 * cost[False], cost
    assert cost[True] < cost[False]


def test_append_only_memory_extends_the_previous_context(ml100k, tiny_llm):
    sim = LLMUserSimulator(model=tiny_llm, dtype="float32", dataset=ml100k, memory_growth=3, history_in_prompt=4, **OK_MASS)
    r = steps(ml100k, "page", n_users=1, n_steps=1)[0][0]
    contexts, shown = [], []
    for _ in range(9):
        contexts.append(sim.scenes.context(r))
        shown.append(len(sim.scenes.shown_memory(r)))
        r = grown(ml100k, r, 7, 0.9)
    # history_count 20 -> 28; restarts where (count - 4) is a multiple of 4: shown 4..7 lines, then 4 again
    assert shown == [4, 5, 6, 7, 4, 5, 6, 7, 4]
    for a, b, n in zip(contexts, contexts[1:], shown[1:]):
        assert b.startswith(a) == (n > 4)
    slide = LLMUserSimulator(model=tiny_llm, dtype="float32", dataset=ml100k, history_in_prompt=4, **OK_MASS)
    assert len(slide.scenes.shown_memory(r)) == 4  # the default: a sliding window of history_in_prompt


def test_kv_store_is_bounded_over_500_episodes(tiny_llm):
    envs = gym.make_vec("RecSimEnv-v0", num_envs=50, vectorization_mode="vector_entry_point", simulator="llm",
                        simulator_kwargs=dict(model=tiny_llm, dtype="float32", kv_cache_tokens=3000, memory_growth=5, **OK_MASS),
                        slate_size=2, max_episode_steps=2)
    store = envs.unwrapped.simulator.scorer.kv_store
    envs.reset(seed=0)
    sizes = []
    for _ in range(21):  # 50 envs x 2-step episodes: 500 episodes end in 20 steps
        envs.step(envs.action_space.sample())
        kept = sum(k.numel() + v.numel() for _, kv in store._entries.values() for k, v in kv)
        per_token = sum(k[0, :, 0].numel() + v[0, :, 0].numel() for k, v in next(iter(store._entries.values()))[1])
        sizes.append(kept)
        assert store.tokens <= 3000 and kept == store.tokens * per_token
    assert store.reused > 0 and max(sizes[10:]) <= 3000 * per_token
    envs.close()
    assert store.tokens == 0 and len(store) == 0  # close drops what was kept


def test_kv_store_lookup_and_eviction():
    import torch

    store = KVStore(max_tokens=10)
    kv = lambda n: [(torch.zeros(1, 1, n, 2), torch.zeros(1, 1, n, 2))]
    store.put("a", [1, 2, 3, 4], kv(4))
    assert store.lookup("a", [1, 2, 9]) == (2, store._entries["a"][1])
    assert store.lookup("a", [5]) == (0, None) and store.lookup("b", [1]) == (0, None)
    store.begin_step()
    store.put("b", [1] * 5, kv(5))
    store.put("c", [2] * 3, kv(3))  # 12 > 10 tokens: the least recently used ("a", of an earlier step) goes
    assert list(store._entries) == ["b", "c"] and store.tokens == 8
    store.put("d", [0] * 11, kv(11))  # longer than the whole budget: not kept
    assert "d" not in store._entries and store.tokens == 8
    store.put("e", [3] * 4, kv(4))  # only entries of this step are left: the new one is not kept
    assert list(store._entries) == ["b", "c"] and store.tokens == 8


def test_kv_store_keeps_reusing_what_fits_when_a_step_needs_more():
    """Three sessions of 4 tokens each step, room for 2: the two that fit are reused every step (plain LRU: none)."""
    import torch

    store = KVStore(max_tokens=8)
    hits = []
    for _ in range(5):
        store.begin_step()
        n = 0
        for key in ("a", "b", "c"):
            found, _ = store.lookup(key, [ord(key)] * 4)
            n += found == 4
            store.put(key, [ord(key)] * 4, [(torch.zeros(1, 1, 4, 2), torch.zeros(1, 1, 4, 2))])
        hits.append(n)
        assert store.tokens <= 8
    assert hits == [0, 2, 2, 2, 2]
    with pytest.raises(ValueError, match="max_tokens must be >= 0"):
        KVStore(-1)
