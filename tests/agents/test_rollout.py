import re
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import recsim_env
from agents.base import RolloutResult, as_policy, rollout
from agents.heuristics import PopularityPolicy, RandomPolicy

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.mark.parametrize("action_mode", ["catalog", "candidates"])
def test_heuristic_policies_act_validly(action_mode):
    env = gym.make("RecSimEnv-v0", action_mode=action_mode)
    obs, info = env.reset(seed=0)
    for policy in (RandomPolicy(env), PopularityPolicy(env)):
        slate = policy.act(obs, info)
        assert env.action_space.contains(np.asarray(slate, dtype=np.int64)) and len(set(slate.tolist())) == 10


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


def test_rollout_metrics_hand_computed():
    from agents.base import EpisodeStats

    e = EpisodeStats()
    fb = [
        {"clicked": True, "skipped": False, "watch_ratio": 0.8},
        {"clicked": False, "skipped": True, "watch_ratio": 0.1},
        {"clicked": False, "skipped": None, "watch_ratio": None},
    ]
    e.add(2.0, {"feedback": fb, "reward_terms": {"repeat": 1.0}})
    e.add(-1.0, {"feedback": fb, "reward_terms": {"repeat": 0.0}})
    m = RolloutResult([e]).metrics()
    assert m["return"] == 1.0 and m["session_length"] == 2
    assert m["click_rate"] == pytest.approx(2 / 6) and m["skip_rate"] == pytest.approx(2 / 4)
    assert m["mean_watch_ratio"] == pytest.approx(0.45) and m["repeat_rate"] == pytest.approx(1 / 6)


def test_readme_examples_run_as_written():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README must hold python examples"
    for code in blocks:
        exec(compile(code, str(README), "exec"), {"__name__": "readme_example"})
