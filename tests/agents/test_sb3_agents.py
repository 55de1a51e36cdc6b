import json

import gymnasium as gym
import numpy as np
import pytest

import recsim_env  # noqa: F401
from agents.rollout import rollout
from agents.sb3_agents import ALGOS, AgentConfig, SB3Policy, SlateBuilder, train_agent
from recsim_cli import main

SMALL = {
    "ppo": {"n_steps": 32, "batch_size": 32, "n_epochs": 1},
    "maskable_ppo": {"n_steps": 32, "batch_size": 32, "n_epochs": 1},
    "a2c": {"n_steps": 8},
    "dqn": {"learning_starts": 20, "buffer_size": 500, "train_freq": 4},
}


def tiny_env_kwargs(path, action_mode="candidates"):
    return {"dataset": str(path), "action_mode": action_mode, "slate_size": 4, "num_candidates": 10, "user_split": "train"}


@pytest.mark.parametrize("algo", ALGOS)
def test_each_algorithm_trains_saves_loads_and_acts_validly(algo, tiny_playtime_dataset, tmp_path):
    action_mode = "catalog" if algo == "maskable_ppo" else "candidates"
    config = AgentConfig(algo=algo, total_timesteps=64, env_kwargs=tiny_env_kwargs(tiny_playtime_dataset, action_mode), algo_kwargs=SMALL[algo])
    model = train_agent(config, tmp_path / algo, progress=False)
    before = {k: v.clone() for k, v in model.policy.state_dict().items()}
    card = json.loads((tmp_path / algo / "card.json").read_text())
    assert card["config"]["algo"] == algo and card["config"]["total_timesteps"] == 64
    env = gym.make("RecSimEnv-v0", **config.env_kwargs)
    policy = SB3Policy.load(tmp_path / algo).bind(env)
    assert all(np.array_equal(v, policy.model.policy.state_dict()[k]) for k, v in before.items())
    obs, info = env.reset(seed=0)
    slate = policy.act(obs, info)
    assert env.action_space.contains(np.asarray(slate, dtype=np.int64))
    if algo == "maskable_ppo":
        assert not obs["consumed"][slate].any(), "MaskablePPO chose a consumed item despite the mask"
    assert rollout(env, policy, episodes=2, seed=0, progress=False).metrics()["session_length"] >= 1


def test_slate_builder_fills_the_slate_one_pick_at_a_time(tiny_playtime_dataset):
    env = SlateBuilder(gym.make("RecSimEnv-v0", **tiny_env_kwargs(tiny_playtime_dataset)))
    obs, _ = env.reset(seed=0)
    assert env.action_space == gym.spaces.Discrete(10) and obs["slate_mask"].sum() == 0
    for pick in (3, 7, 1):
        obs, reward, terminated, truncated, info = env.step(pick)
        assert reward == 0.0 and not (terminated or truncated) and "feedback" not in info
    assert obs["slate_mask"][[3, 7, 1]].tolist() == [1, 1, 1] and obs["slot"][0] == pytest.approx(0.75)
    obs, reward, terminated, truncated, info = env.step(5)
    candidates_shown = info["feedback"]["item_id"].tolist()
    assert len(candidates_shown) == 4 and obs["slate_mask"].sum() == 0
    assert env.observation_space.contains(obs)


def test_policy_refuses_an_env_with_other_spaces(tiny_playtime_dataset, tmp_path):
    config = AgentConfig(algo="a2c", total_timesteps=16, env_kwargs=tiny_env_kwargs(tiny_playtime_dataset), algo_kwargs=SMALL["a2c"])
    train_agent(config, tmp_path / "a2c", progress=False)
    other = gym.make("RecSimEnv-v0", **{**config.env_kwargs, "num_candidates": 8})
    with pytest.raises(ValueError, match="same arguments"):
        SB3Policy.load(tmp_path / "a2c").bind(other)
    with pytest.raises(FileNotFoundError, match="card.json"):
        SB3Policy.load(tmp_path)


def test_unknown_algo_is_rejected():
    with pytest.raises(ValueError, match="algo must be one of"):
        AgentConfig(algo="sac")


def test_cli_trains_an_agent_and_rolls_it_out(tiny_playtime_dataset, tmp_path, capsys):
    out = tmp_path / "agent"
    common = ["--dataset", str(tiny_playtime_dataset), "--slate-size", "4", "--num-candidates", "10"]
    assert main(["train-agent", "--algo", "a2c", "--timesteps", "16", "--out", str(out), *common]) == 0
    assert (out / "model.zip").exists()
    assert main(["rollout", "--policy", f"a2c:{out},random", "--episodes", "2", "--action-mode", "candidates",
                 "--user-split", "train", *common]) == 0
    printed = capsys.readouterr().out
    assert f"a2c:{out}"[:12] in printed and "random" in printed


def test_ppo_with_the_candidate_scorer_beats_random_on_held_out_users(tmp_path):
    # ~80 s on 2 cores. Trained on v1 (the default), evaluated on held-out users of v0 (longer episodes: a steadier
    # estimate). Measured at this budget in three runs (seeds 0 and 1, two code versions whose observations differ by
    # 1e-7): return 34.5-35.6 vs random 30.6, click rate 0.299-0.307 vs 0.287. An earlier margin (+4 return, +0.02
    # click rate) held for one seed only; PPO learns little in 60k picks here (docs/policies.md).
    from agents.heuristics import RandomPolicy

    config = AgentConfig(algo="ppo", total_timesteps=60_000, env_kwargs={"action_mode": "candidates", "user_split": "train"})
    train_agent(config, tmp_path / "ppo", progress=False)
    env = gym.make("RecSimEnv-v0", action_mode="candidates", user_split="test")
    ppo = rollout(env, SB3Policy.load(tmp_path / "ppo").bind(env), episodes=30, seed=500, progress=False).metrics()
    rnd = rollout(env, RandomPolicy(env, seed=0), episodes=30, seed=500, progress=False).metrics()
    assert ppo["return"] > rnd["return"] + 2 and ppo["click_rate"] > rnd["click_rate"] + 0.005, (ppo, rnd)


def test_slate_policy_keeps_the_multidiscrete_action(tiny_playtime_dataset, tmp_path):
    config = AgentConfig(algo="ppo", total_timesteps=32, env_kwargs=tiny_env_kwargs(tiny_playtime_dataset), policy="slate",
                         algo_kwargs=SMALL["ppo"])
    model = train_agent(config, tmp_path / "slate", progress=False)
    assert isinstance(model.action_space, gym.spaces.MultiDiscrete) and not config.builds_slates
    with pytest.raises(ValueError, match="scores candidates"):
        AgentConfig(algo="ppo", policy="scorer", env_kwargs={"action_mode": "catalog"})



def test_bare_algo_names_train_cached_agents_on_a_dataset_without_user_or_item_files(tmp_path, monkeypatch, capsys):
    # zero-width observation keys (user, profile) are dropped for SB3; the agent cache is keyed by the env too
    from tests.conftest import write_atomic

    monkeypatch.setenv("RECSIM_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    rows = ["user_id:token\titem_id:token\trating:float\ttimestamp:float"]
    rows += [f"u{u}\ti{i}\t{rng.integers(1, 6)}\t{100 + t}" for u in range(20) for t, i in enumerate(rng.choice(30, 12, replace=False))]
    data = write_atomic(tmp_path, "bare", {"inter": "\n".join(rows)})
    common = ["--dataset", str(data), "--agent-timesteps", "200", "--episodes", "2", "--num-candidates", "10",
              "--slate-size", "4", "--user-split", "train"]
    assert main(["rollout", "--policy", "ppo,dqn", "--action-mode", "candidates", *common]) == 0
    assert main(["rollout", "--policy", "ppo,maskable_ppo", "--action-mode", "catalog", *common]) == 0
    assert len(list((tmp_path / "cache" / "agents").glob("*/model.zip"))) == 4
