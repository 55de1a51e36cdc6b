"""The throughput benchmark counts what it says: real transitions, not autoreset-only rows; its peers' scripts exist."""

import gymnasium as gym
import numpy as np

import recsim_env
from benchmarks import peers
from benchmarks.throughput import measure_vector, step_profile


def test_vector_rows_count_real_transitions_only():
    rng = np.random.default_rng(0)
    kw = dict(num_envs=8, vectorization_mode="vector_entry_point")
    nxt = measure_vector(gym.make_vec(recsim_env.ENV_ID, autoreset_mode="next_step", **kw), 0.3, rng)
    same = measure_vector(gym.make_vec(recsim_env.ENV_ID, autoreset_mode="same_step", **kw), 0.3, rng)
    # v1 feed sessions under random slates last a few steps: NEXT_STEP spends a step per ended episode on its reset
    assert 0.05 < nxt["noop_share"] < 0.6 and same["noop_share"] == 0.0
    assert nxt["transitions_per_cpu_s"] > 0 and same["transitions_per_cpu_s"] > 0


def test_step_profile_lists_the_costliest_functions():
    env = gym.make(recsim_env.ENV_ID)
    env.reset(seed=0)

    def step():
        if any(env.step(env.action_space.sample())[2:4]):
            env.reset()

    rows = step_profile(step, 20, top=5)
    assert len(rows) == 5 and all(0 < r["own_share"] <= 1 for r in rows)
    assert sum(r["own_share"] for r in rows) <= 1 + 1e-9 and rows[0]["own_share"] >= rows[-1]["own_share"]


def test_peer_scripts_and_installs_are_declared():
    for name, (installs, _, script) in peers.PEERS.items():
        assert (peers.HERE / script).is_file() and installs and all(installs), name
