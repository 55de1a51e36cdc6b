"""Policy-ranking protocol: metrics equal hand counts, rho reads a planted ranking, the oracle replays the logs."""

import gymnasium as gym
import numpy as np
import pytest

import recsim_env
from agents.base import as_policy
from agents.heuristics import LogReplayPolicy, PopularityPolicy, RandomPolicy
from benchmarks.protocols.policy_ranking import RankingConfig, evaluate, format_results, ndcg_at_k, recall_at_k, spearman, starts


def test_recall_and_ndcg_hand_computed():
    slate, relevant = np.array([5, 1, 9, 2]), np.array([1, 2, 3])
    assert recall_at_k(slate, relevant) == pytest.approx(2 / 3)
    # hits at ranks 2 and 4: 1/log2(3) + 1/log2(5); ideal: 3 hits at ranks 1-3
    ideal = 1 + 1 / np.log2(3) + 1 / np.log2(4)
    assert ndcg_at_k(slate, relevant) == pytest.approx((1 / np.log2(3) + 1 / np.log2(5)) / ideal)
    assert ndcg_at_k(np.array([1, 2, 3]), relevant) == pytest.approx(1.0) and recall_at_k(slate, np.array([7])) == 0


def test_spearman_reads_a_planted_ranking():
    quality = np.array([0.1, 0.5, 0.3, 0.9])
    assert spearman(quality, 2 * quality + 1) == pytest.approx(1.0) and spearman(quality, -quality) == pytest.approx(-1.0)
    assert spearman(quality, np.array([1.0, 3.0, 4.0, 2.0])) == pytest.approx(0.2)  # ranks (1,3,2,4) vs (1,3,4,2)
    assert np.isnan(spearman(quality, np.ones(4)))


def test_starts_hold_out_the_last_items_of_held_out_users(ml100k):
    config = RankingConfig(horizon=10, min_history=10)
    points = starts(ml100k, config)
    assert points and all(ml100k.split[u] == ml100k.SPLITS["test"] for u, _ in points)
    assert all(cut == ml100k.user_ptr[u + 1] - ml100k.user_ptr[u] - 10 and cut >= 10 for u, cut in points)


def test_the_log_replaying_oracle_scores_full_recall_offline(ml100k):
    env = gym.make(recsim_env.ENV_ID, user_split="test")
    policies = {"oracle (the user's next logged items)": as_policy(LogReplayPolicy(env)),
                "popular": as_policy(PopularityPolicy(env)), "random": as_policy(RandomPolicy(env, seed=0))}
    res = evaluate(env, policies, RankingConfig(max_users=12, bootstrap=50), progress=False)
    means = res["means"]
    assert means["recall"]["oracle (the user's next logged items)"] == 1.0 == means["ndcg"]["oracle (the user's next logged items)"]
    assert means["recall"]["popular"] > means["recall"]["random"] and res["n_starts"] == 12
    rho = res["rho"]["ndcg vs return"]
    assert -1 <= rho["rho"] <= 1 and rho["ci"][0] <= rho["ci"][1]
    assert "SimUSER" in format_results(res, "test", "cmd")


def test_a_candidates_mode_ppo_agent_is_ranked_in_its_own_env(ml100k):
    from benchmarks.protocols.policy_ranking import _policy

    env = gym.make(recsim_env.ENV_ID, dataset=ml100k, user_split="test")
    config = RankingConfig(max_users=6, bootstrap=20)
    ppo, own = _policy("ppo", env, config, recbole_epochs=1, agent_timesteps=1000)  # trained on train users (cached)
    assert own.unwrapped.batch.simulator is env.unwrapped.batch.simulator and own.action_space.nvec.tolist() == [50] * 10
    firsts = []

    def recording(obs, info):
        slate = ppo.act(obs, info)
        if obs["step"][0] == 0:
            firsts.append(np.asarray(obs["candidates"])[slate])  # the items it shows first
        return slate

    res = evaluate(env, {"ppo": (recording, own), "random": as_policy(RandomPolicy(env, seed=0))}, config, progress=False)
    assert res["n_starts"] == 6 == len(firsts) and np.isfinite(res["means"]["return"]["ppo"])
    # the offline metric scores the items it showed (candidate indices mapped to items), not the indices
    recall = [recall_at_k(f, ml100k.inter_item[ml100k.history(u)][cut:]) for f, (u, cut) in zip(firsts, starts(ml100k, config))]
    assert res["means"]["recall"]["ppo"] == pytest.approx(np.mean(recall)) and max(f.max() for f in firsts) >= 50
    future = {u: ml100k.inter_item[ml100k.history(u)][cut:] for u, cut in starts(ml100k, config)}

    def candidates_oracle(obs, info):  # the candidates the user really consumed next, first
        return np.argsort(~np.isin(obs["candidates"], future[int(info["user_index"])]), kind="stable")[:10]

    res = evaluate(env, {"oracle": (candidates_oracle, own), "random": as_policy(RandomPolicy(env, seed=0))}, config, progress=False)
    assert res["means"]["recall"]["oracle"] > res["means"]["recall"]["random"]  # read as items, its hits count
