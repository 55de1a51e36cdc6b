"""Minari recording (agents/record.py): the data replays the env exactly, propensities are the policy's, both formats;
stochastic policies' propensities are distributions; OPE estimators on planted data (benchmarks/ope.py)."""

import itertools
import warnings

import gymnasium as gym
import numpy as np
import pytest

import recsim_env  # noqa: F401
from agents.heuristics import ContentPolicy, PopularityPolicy, RandomPolicy, SoftmaxPolicy
from agents.record import reason_texts, record_dataset

minari = pytest.importorskip("minari")
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(autouse=True)
def minari_home(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))


@pytest.mark.parametrize("data_format, mode", [("hdf5", "feed"), ("arrow", "page"), ("arrow", "feed")])
def test_recorded_dataset_replays_the_env_and_holds_the_policys_propensities(data_format, mode):
    kw = dict(action_mode="candidates", num_candidates=12, slate_size=3, feedback_mode=mode)
    env = gym.make("RecSimEnv-v1", **kw)
    logger = SoftmaxPolicy(env, PopularityPolicy(env), temperature=0.7, epsilon=0.2, seed=5)
    record_dataset(env, logger, 4, "recsim/test-softmax-v0", seed=100, data_format=data_format, progress=False)
    ds = minari.load_dataset("recsim/test-softmax-v0")
    assert ds.total_episodes == 4
    replay = ds.recover_environment()
    assert replay.unwrapped.config.feedback_mode == mode and replay.unwrapped.config.session_end == "fitted"
    check = SoftmaxPolicy(env, PopularityPolicy(env), temperature=0.7, epsilon=0.2)
    for ep in ds.iterate_episodes():
        T = len(ep.rewards)
        assert ep.actions.shape == (T, 3) and ep.infos["feedback.clicked"].shape == (T + 1, 3)
        assert np.isnan(ep.infos["log_propensity"][0])
        replay.reset(seed=int(ep.id) + 100)
        for t in range(T):
            obs = {k: v[t] for k, v in ep.observations.items()}
            assert ep.infos["log_propensity"][t + 1] == pytest.approx(
                check.log_propensity(obs, {"user_index": ep.infos["user_index"][t]}, ep.actions[t]))
            _, r, term, trunc, info = replay.step(ep.actions[t])
            assert r == pytest.approx(ep.rewards[t]) and term == ep.terminations[t]
            assert info["feedback"]["played"].tolist() == ep.infos["feedback.played"][t + 1].tolist()
        assert ep.terminations[-1] or ep.truncations[-1]
    codes = np.concatenate([ep.infos["feedback.reason_class"].ravel() for ep in ds.iterate_episodes()])
    assert codes.min() >= -1 and len(reason_texts(ds)) == 4
    with pytest.raises(FileExistsError, match="exists already"):
        record_dataset(env, logger, 1, "recsim/test-softmax-v0", progress=False)


def test_a_policy_without_propensities_is_logged_as_nan_not_a_number():
    env = gym.make("RecSimEnv-v1", slate_size=2)
    ds = record_dataset(env, lambda obs: np.array([0, 1]), 2, "recsim/test-fn-v0", progress=False)
    assert all(np.isnan(ep.infos["log_propensity"]).all() for ep in ds.iterate_episodes())


def test_softmax_propensities_are_a_distribution_over_ordered_slates():
    env = gym.make("RecSimEnv-v1", action_mode="candidates", num_candidates=6, slate_size=2)
    obs, info = env.reset(seed=0)
    for scorer in (PopularityPolicy(env), ContentPolicy(env)):
        pol = SoftmaxPolicy(env, scorer, temperature=0.3, epsilon=0.1)
        total = sum(np.exp(pol.log_propensity(obs, info, np.array(s))) for s in itertools.permutations(range(6), 2))
        assert total == pytest.approx(1.0)
        assert pol.log_propensity(obs, info, np.array([1, 1])) == -np.inf  # a repeat is never drawn
    uniform = SoftmaxPolicy(env, PopularityPolicy(env), epsilon=1.0)
    assert uniform.log_propensity(obs, info, np.array([3, 0])) == pytest.approx(
        RandomPolicy(env).log_propensity(obs, info, np.array([3, 0])))
    greedy = PopularityPolicy(env)
    assert greedy.log_propensity(obs, info, greedy.act(obs, info)) == 0.0
    with pytest.raises(ValueError, match="temperature > 0"):
        SoftmaxPolicy(env, greedy, temperature=0)


def test_sb3_stochastic_propensities_sum_to_one():
    from stable_baselines3 import PPO

    from agents.sb3_agents import SB3Policy

    env = gym.make("RecSimEnv-v1", action_mode="candidates", num_candidates=4, slate_size=2)
    model = PPO("MultiInputPolicy", env, seed=0, device="cpu")
    obs, info = env.reset(seed=0)
    stochastic = SB3Policy(model, "ppo", deterministic=False)
    total = sum(np.exp(stochastic.log_propensity(obs, info, np.array(s))) for s in itertools.product(range(4), repeat=2))
    assert total == pytest.approx(1.0, abs=1e-5)
    det = SB3Policy(model, "ppo")
    assert det.log_propensity(obs, info, det.act(obs, info)) == 0.0


def test_ips_equals_hand_computed_values_on_planted_logs():
    from benchmarks.ope import Logged, estimate

    class Fixed:  # target log-propensity: log 0.5 for slate [0], log 0.1 otherwise
        def log_propensity(self, obs, info, slate):
            return np.log(0.5) if slate[0] == 0 else np.log(0.1)

    eps = [{"obs": [{}] * 2, "info": [{}] * 2, "actions": np.array([[0], [1]]), "rewards": np.array([1.0, 2.0]),
            "logp": np.log([0.25, 0.5])},
           {"obs": [{}], "info": [{}], "actions": np.array([[1]]), "rewards": np.array([3.0]), "logp": np.log([0.5])}]
    e = estimate(Logged(eps), Fixed())
    w = np.array([2.0, 0.2])  # first-step ratios
    assert e["ips_first"] == pytest.approx((w * [1, 3]).mean())
    assert e["snips_first"] == pytest.approx((w * [1, 3]).sum() / w.sum())
    assert e["pdis_return"] == pytest.approx(((2 * 1 + 2 * 0.2 * 2) + 0.2 * 3) / 2)
    assert e["naive_first"] == pytest.approx(2.0) and e["ess_first"] == pytest.approx(w.sum() ** 2 / (w ** 2).sum())
    with pytest.raises(TypeError, match="needs log_propensity"):
        estimate(Logged(eps), object())


def test_cli_record_writes_and_refuses_an_existing_id(capsys):
    from recsim_cli import main

    args = ["record", "--episodes", "2", "--dataset-id", "recsim/cli-v0", "--slate-size", "2", "--data-format", "arrow"]
    assert main(args) == 0 and "with propensities" in capsys.readouterr().out
    assert main(args) == 2 and "exists already" in capsys.readouterr().err
    assert main(["record", "--episodes", "1", "--dataset-id", "recsim/x-v0", "--policy", "nope"]) == 2
