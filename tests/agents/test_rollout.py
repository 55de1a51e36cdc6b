import gymnasium as gym
import numpy as np
import pytest

import recsim_env
from agents.base import as_policy
from agents.rollout import rollout
from agents.heuristics import ContentPolicy, PopularityPolicy, RandomPolicy

@pytest.mark.parametrize("action_mode", ["catalog", "candidates"])
def test_heuristic_policies_act_validly(action_mode):
    env = gym.make("RecSimEnv-v0", action_mode=action_mode)
    obs, info = env.reset(seed=0)
    for policy in (RandomPolicy(env), PopularityPolicy(env), ContentPolicy(env)):
        slate = policy.act(obs, info)
        assert env.action_space.contains(np.asarray(slate, dtype=np.int64)) and len(set(slate.tolist())) == 10
        if action_mode == "catalog" and not isinstance(policy, RandomPolicy):
            assert not obs["consumed"][slate].any()


def test_content_policy_shows_items_close_to_the_profile():
    env = gym.make("RecSimEnv-v0", user_split="test")
    obs, info = env.reset(seed=3)
    text = env.unwrapped.batch.features.text
    slate = ContentPolicy(env).act(obs, info)
    fresh = np.flatnonzero(obs["consumed"] == 0)
    sims = text[fresh] @ obs["profile"]
    assert (text[slate] @ obs["profile"]).min() >= np.sort(sims)[-10] - 1e-6  # the 10 most similar fresh items


def test_popularity_beats_random_on_clicks_and_return():
    env = gym.make("RecSimEnv-v0", user_split="test")
    rnd = rollout(env, RandomPolicy(env), episodes=15, seed=0, progress=False).metrics()
    pop = rollout(env, PopularityPolicy(env), episodes=15, seed=0, progress=False).metrics()
    assert pop["click_rate"] > rnd["click_rate"] + 0.05 and pop["return"] > rnd["return"]
    assert pop["repeat_rate"] == 0.0


def test_rollout_accepts_plain_function_and_is_reproducible():
    env = gym.make("RecSimEnv-v0", feedback_mode="page")

    def first_fresh(obs):
        return np.flatnonzero(obs["consumed"] == 0)[:10]

    a = rollout(env, first_fresh, episodes=3, seed=5, progress=False)
    b = rollout(env, first_fresh, episodes=3, seed=5, progress=False)
    assert [e.ret for e in a.episodes] == [e.ret for e in b.episodes] and a.episodes[0].length >= 1
    with pytest.raises(TypeError, match="act\\(observation, info\\)"):
        as_policy(42)


def test_rollout_cli_writes_tables_and_plot(tmp_path):
    from recsim_cli import main

    assert main(["rollout", "--policy", "random,popular", "--episodes", "2", "--seeds", "2", "--out", str(tmp_path)]) == 0
    table = (tmp_path / "results.md").read_text()
    assert "| popular |" in table and "+-" in table and (tmp_path / "results.png").stat().st_size > 0
    import json

    data = json.loads((tmp_path / "results.json").read_text())
    assert len(data["results"]["random"]["per_seed"]) == 2


def test_rollout_cli_with_llm_simulator(tmp_path, tiny_llm):
    from recsim_cli import main

    argv = ["rollout", "--policy", "popular", "--episodes", "1", "--seeds", "1", "--simulator", "llm",
            "--simulator-model", tiny_llm, "--slate-size", "3", "--out", str(tmp_path)]
    assert main(argv) == 0
    assert "llm simulator" in (tmp_path / "results.md").read_text()


