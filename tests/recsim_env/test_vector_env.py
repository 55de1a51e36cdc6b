import gymnasium as gym
import numpy as np
import pytest

import recsim_env
from recsim_env import RecSimVectorEnv
from simulators.fitted import FittedUserModel

FAST_END = dict(initial=1.0, maximum=2.0)  # sessions end within a few steps, exercising autoreset


class CountingSimulator:
    """Test double around the real fitted model: counts calls and batch sizes."""

    def __init__(self, inner):
        self.inner, self.batches = inner, []

    def respond(self, requests, rngs):
        self.batches.append(len(requests))
        return self.inner.respond(requests, rngs)


def test_make_vec_uses_vector_entry_point_and_one_simulator_call_per_step(ml100k):
    sim = CountingSimulator(FittedUserModel.fit(ml100k))
    envs = gym.make_vec("RecSimEnv-v0", num_envs=16, vectorization_mode="vector_entry_point", simulator=sim)
    assert isinstance(envs.unwrapped, RecSimVectorEnv) and envs.num_envs == 16
    envs.reset(seed=0)
    stepped = []
    for _ in range(5):
        stepped.append(int(envs.step(envs.action_space.sample())[4]["_feedback"].sum()))
    # one call per vector step, covering every sub-env that stepped (autoresetting ones do not)
    assert sim.batches == stepped and stepped[0] == 16


@pytest.mark.parametrize("feedback_mode, action_mode", [("feed", "catalog"), ("page", "candidates")])
def test_vector_env_equals_single_envs_with_same_seeds(feedback_mode, action_mode):
    n, seed, steps = 4, 11, 30
    kw = dict(feedback_mode=feedback_mode, action_mode=action_mode, dynamics=FAST_END)
    envs = gym.make_vec("RecSimEnv-v0", num_envs=n, vectorization_mode="vector_entry_point", **kw)
    singles = [gym.make("RecSimEnv-v0", **kw) for _ in range(n)]
    vobs, _ = envs.reset(seed=seed)
    sobs = [e.reset(seed=seed + i)[0] for i, e in enumerate(singles)]
    done = [False] * n
    rng = np.random.default_rng(0)
    ends = 0
    for _ in range(steps):
        for i in range(n):
            for key in vobs:
                np.testing.assert_array_equal(vobs[key][i], sobs[i][key], err_msg=f"env {i} obs {key}")
        actions = rng.integers(0, envs.single_action_space.nvec, size=(n, 10))
        vobs, vrew, vterm, vtrunc, vinfo = envs.step(actions)
        for i, env in enumerate(singles):
            if done[i]:  # NEXT_STEP autoreset: this step resets, reward 0
                sobs[i], _ = env.reset()
                r, term, trunc = 0.0, False, False
                assert not vinfo["_feedback"][i]
            else:
                sobs[i], r, term, trunc, info = env.step(actions[i])
                assert info["feedback"]["item_id"].tolist() == vinfo["feedback"]["item_id"][i].tolist()
                assert info["reward_terms"]["skip"] == vinfo["reward_terms"]["skip"][i]
            assert (vrew[i], vterm[i], vtrunc[i]) == pytest.approx((r, term, trunc))
            done[i] = term or trunc
            ends += term or trunc
    assert ends >= 3, "the test should cover autoresets"


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_sync_and_async_vectorization_modes(mode):
    envs = gym.make_vec("RecSimEnv-v0", num_envs=2, vectorization_mode=mode, dynamics=FAST_END,
                        **({"vector_kwargs": {"shared_memory": False}} if mode == "async" else {}))
    obs, _ = envs.reset(seed=0)
    assert obs["history_items"].shape == (2, 30)
    total = 0.0
    for _ in range(6):
        obs, r, term, trunc, info = envs.step(envs.action_space.sample())
        total += float(np.abs(r).sum())
    assert total > 0
    envs.close()


def test_vector_env_bad_actions():
    envs = gym.make_vec("RecSimEnv-v0", num_envs=3, vectorization_mode="vector_entry_point")
    with pytest.raises(RuntimeError, match="reset"):
        envs.step(np.zeros((3, 10), int))
    envs.reset(seed=0)
    with pytest.raises(ValueError, match=r"shape \(10,\), expected \(3, 10\): one slate per sub-env"):
        envs.step(np.zeros(10, int))
    with pytest.raises(ValueError, match="out of range"):
        envs.step(np.full((3, 10), 5000))
