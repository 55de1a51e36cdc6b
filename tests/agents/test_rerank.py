import gymnasium as gym
import numpy as np
import pytest

import recsim_env  # noqa: F401
from agents.heuristics import PopularityPolicy
from agents.rerank import RerankPolicy
from simulators.base import SimulationResponse


class EvenItemsAreSkipped:
    """Test double: predicts a skip for every even item id."""

    def respond(self, requests, rngs):
        out = []
        for r in requests:
            k = len(r.slate)
            p = np.where(r.slate % 2 == 0, 0.9, 0.1)
            out.append(SimulationResponse(played=np.ones(k, bool), clicked=p < 0.5, skipped=p >= 0.5,
                                          watch_ratio=np.full(k, 0.5), rating=np.full(k, np.nan), skip_probs=p))
        return out


@pytest.mark.parametrize("action_mode", ["catalog", "candidates"])
def test_rerank_removes_items_the_simulator_says_would_be_skipped(action_mode):
    env = gym.make("RecSimEnv-v0", action_mode=action_mode)
    obs, info = env.reset(seed=0)
    policy = RerankPolicy(env, PopularityPolicy(env), simulator=EvenItemsAreSkipped(), n_proposals=40)
    slate = policy.act(obs, info)
    items = obs["candidates"][slate] if action_mode == "candidates" else slate
    assert len(set(slate.tolist())) == 10 and env.action_space.contains(slate.astype(np.int64))
    assert np.all(items % 2 == 1)
    proposed = policy.last["proposed"]
    expected = [a for a in proposed if (obs["candidates"][a] if action_mode == "candidates" else a) % 2 == 1][:10]
    assert slate.tolist() == expected  # the backbone's order among the survivors
    env.step(slate)


def test_rerank_with_fitted_simulator_keeps_predicted_watches_and_fills_when_short():
    env = gym.make("RecSimEnv-v0", user_split="test")
    obs, info = env.reset(seed=1)
    policy = RerankPolicy(env, PopularityPolicy(env), n_proposals=40, skip_threshold=0.6)
    slate = policy.act(obs, info)
    p = dict(zip(policy.last["proposed"].tolist(), policy.last["skip_probs"]))
    kept = [a for a in slate if p[a] <= 0.6]
    filled = [a for a in slate if p[a] > 0.6]
    assert set(policy.last["removed"].tolist()).isdisjoint(kept)
    if filled:  # too few survivors: the least likely skips among the removed fill the slate
        removed_p = sorted(p[a] for a in policy.last["removed"])
        assert sorted(p[a] for a in filled) == removed_p[: len(filled)]
    strict = RerankPolicy(env, PopularityPolicy(env), n_proposals=40, skip_threshold=0.0)
    assert len(strict.act(obs, info)) == 10
    with pytest.raises(ValueError, match="n_proposals"):
        RerankPolicy(env, PopularityPolicy(env), n_proposals=5)
