import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env

import recsim_env
from recsim_env import RecSimEnv
from simulators.base import SimulationResponse

MODES = [(f, a) for f in ("page", "feed") for a in ("catalog", "candidates")]


def test_make_registers_and_imports():
    env = gym.make("RecSimEnv-v0")
    assert isinstance(env.unwrapped, RecSimEnv) and env.spec.max_episode_steps == 100
    code = "import gymnasium as gym; e = gym.make('recsim_env:RecSimEnv-v0'); print(type(e.unwrapped).__name__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "RecSimEnv"


@pytest.mark.parametrize("feedback_mode, action_mode", MODES)
def test_gymnasium_env_checker(feedback_mode, action_mode):
    gym_check_env(RecSimEnv(feedback_mode=feedback_mode, action_mode=action_mode), skip_render_check=True)


@pytest.mark.parametrize("feedback_mode, action_mode", MODES)
def test_sb3_env_checker(feedback_mode, action_mode):
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    sb3_check_env(RecSimEnv(feedback_mode=feedback_mode, action_mode=action_mode, max_episode_steps=20), warn=True)


def run(env, seed, steps=25, action_seed=1):
    rng = np.random.default_rng(action_seed)
    obs, _ = env.reset(seed=seed)
    traj = [obs]
    for _ in range(steps):
        obs, r, term, trunc, info = env.step(rng.integers(0, env.action_space.nvec))
        traj.append((obs, r, term, trunc, info["feedback"], info["reward_terms"]))
        if term or trunc:
            obs, _ = env.reset()
            traj.append(obs)
    return traj


def same(a, b):
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, np.ndarray):
        return np.array_equal(a, b, equal_nan=a.dtype != object)
    return a == b or (a != a and b != b)


@pytest.mark.parametrize("feedback_mode, action_mode", MODES)
def test_same_seed_same_trajectory(feedback_mode, action_mode):
    kw = dict(feedback_mode=feedback_mode, action_mode=action_mode)
    a, b = run(gym.make("RecSimEnv-v0", **kw), 3), run(gym.make("RecSimEnv-v0", **kw), 3)
    assert same(a, b)
    assert not same(a, run(gym.make("RecSimEnv-v0", **kw), 4))


@pytest.mark.parametrize(
    "action, match",
    [
        (np.zeros(9, int), r"shape \(9,\), expected \(10,\)"),
        (np.zeros((2, 10), int), r"shape \(2, 10\), expected \(10,\)"),
        (np.full(10, 1682), r"index 1682 is out of range: expected item indices in \[0, n_items\)"),
        (np.full(10, -1), r"index -1 is out of range"),
        (np.full(10, 0.5), r"must hold integers"),
        (["a"] * 10, r"must hold integers"),
    ],
)
def test_malformed_actions_raise_value_error(action, match):
    env = gym.make("RecSimEnv-v0")
    env.reset(seed=0)
    with pytest.raises(ValueError, match=match):
        env.step(action)


def test_candidate_mode_range_error_and_mapping():
    env = gym.make("RecSimEnv-v0", action_mode="candidates", num_candidates=20)
    obs, _ = env.reset(seed=0)
    with pytest.raises(ValueError, match=r"candidate indices in \[0, num_candidates\)"):
        env.step(np.full(10, 20))
    cands = obs["candidates"]
    assert len(set(cands.tolist())) == 20 and not obs["history_items"][np.isin(obs["history_items"], cands)].size
    _, _, _, _, info = env.step(np.arange(10)[::-1])
    assert info["feedback"]["item_id"].tolist() == cands[np.arange(10)[::-1]].tolist()


@pytest.mark.parametrize("bad, match", [
    (dict(feedback_mode="scroll"), r"feedback_mode must be one of \('page', 'feed'\)"),
    (dict(action_mode="items"), "action_mode must be"),
    (dict(slate_size=0), "slate_size must be >= 1"),
    (dict(action_mode="candidates", num_candidates=5), r"num_candidates \(5\) must be >= slate_size \(10\)"),
    (dict(reward_weights={"clicks": 1.0}), r"reward_weights got unknown name\(s\) \['clicks'\]; known names: \['click'"),
    (dict(simulator="oracle"), "Unknown simulator 'oracle'"),
    (dict(slatesize=5), r"got an unexpected keyword argument 'slatesize'"),
])
def test_bad_arguments_are_explained(bad, match):
    with pytest.raises((ValueError, TypeError), match=match):
        RecSimEnv(**bad)


def test_duplicates_and_consumed_items_are_legal_with_consequences():
    env = RecSimEnv(feedback_mode="feed")
    obs, _ = env.reset(seed=0)
    consumed = np.flatnonzero(obs["consumed"])
    fresh = np.flatnonzero(obs["consumed"] == 0)
    slate = np.array([fresh[0], fresh[0], consumed[0], *fresh[1:8]])
    _, reward, _, _, info = env.step(slate)
    fb = info["feedback"]
    assert info["reward_terms"]["repeat"] == 2
    assert fb["skipped"][1] and fb["skipped"][2] and not fb["clicked"][1] and not fb["clicked"][2]
    page = RecSimEnv(feedback_mode="page", simulator="fitted")
    obs, _ = page.reset(seed=0)
    consumed = np.flatnonzero(obs["consumed"])
    _, _, _, _, info = page.step(consumed[:10])  # only consumed items: nothing can be clicked
    assert info["reward_terms"]["repeat"] == 10 and not info["feedback"]["clicked"].any()
    assert info["choice_probs"][-1] == pytest.approx(1.0)


class ScriptedSimulator:
    """Test double: answers every item with a fixed (skipped, watch_ratio)."""

    def __init__(self, skipped: bool, ratio: float, leave: bool = False):
        self.skipped, self.ratio, self.leave = skipped, ratio, leave
        self.calls = 0

    def respond(self, requests, rngs):
        self.calls += 1
        out = []
        for r in requests:
            k = len(r.slate)
            skipped = np.full(k, self.skipped)
            out.append(SimulationResponse(
                played=np.ones(k, bool), clicked=~skipped, skipped=skipped, watch_ratio=np.full(k, self.ratio),
                rating=np.full(k, np.nan), reason_class=["content-driven"] * k, reason_text=["scripted"] * k, leave=self.leave,
            ))
        return out


def test_patience_falls_with_skips_rises_with_likes_and_ends_episode():
    dyn = dict(initial=3.0, maximum=4.0, skip_cost=0.1, empty_page_cost=1.0, like_gain=0.05)
    env = RecSimEnv(simulator=ScriptedSimulator(skipped=True, ratio=0.1), dynamics=dyn, slate_size=5)
    obs, _ = env.reset(seed=0)
    fresh = np.flatnonzero(obs["consumed"] == 0)
    patience = [3.0]
    for t in range(2):
        obs, r, term, trunc, info = env.step(fresh[5 * t : 5 * t + 5])
        patience.append(float(obs["patience"][0]))
    # each step: 5 skips * 0.1 + empty page 1.0
    assert patience == pytest.approx([3.0, 1.5, 0.0]) and term and not trunc
    assert obs["patience"][0] == pytest.approx(0.0)
    assert info["feedback"]["reason_class"][0] == "content-driven" and info["feedback"]["reason_text"][0] == "scripted"

    like = RecSimEnv(simulator=ScriptedSimulator(skipped=False, ratio=0.9), dynamics=dyn, slate_size=5)
    obs, _ = like.reset(seed=0)
    fresh = np.flatnonzero(obs["consumed"] == 0)
    obs, r, term, _, info = like.step(fresh[:5])
    assert obs["patience"][0] == pytest.approx(3.25) and not term
    assert r == pytest.approx(5 * 1.0 + 5 * 0.9)  # click weight 1, watch_ratio weight 1

    leave = RecSimEnv(simulator=ScriptedSimulator(skipped=False, ratio=0.9, leave=True))
    leave.reset(seed=0)
    assert leave.step(np.arange(10))[2] is True


def test_memory_grows_with_what_was_played():
    env = RecSimEnv(feedback_mode="feed", simulator=ScriptedSimulator(skipped=False, ratio=0.8))
    obs, _ = env.reset(seed=0)
    slate = np.flatnonzero(obs["consumed"] == 0)[:10]
    obs, *_ = env.step(slate)
    assert np.array_equal(obs["history_items"][-10:], slate)
    assert np.allclose(obs["history_feedback"][-10:], [[1, 0, 0.8]] * 10)
    assert obs["consumed"][slate].all() and obs["step"][0] == 1

    page = RecSimEnv(feedback_mode="page")
    obs, _ = page.reset(seed=0)
    before = obs["history_items"].copy()
    for _ in range(20):
        obs, _, _, _, info = page.step(np.flatnonzero(obs["consumed"] == 0)[:10])
        clicked = info["feedback"]["item_id"][info["feedback"]["clicked"]].tolist()
        if clicked:
            assert obs["history_items"][-1] == clicked[0] and np.array_equal(obs["history_items"][:-1], before[1:])
            break
        before = obs["history_items"].copy()
    else:
        pytest.fail("no click in 20 pages of fresh popular-order items")


def test_reward_is_weighted_sum_of_reported_terms():
    weights = dict(click=2.0, watch_ratio=0.5, skip=-1.0, repeat=-3.0, like=0.25)
    env = RecSimEnv(reward_weights=weights)
    env.reset(seed=5)
    rng = np.random.default_rng(0)
    for _ in range(10):
        _, r, term, trunc, info = env.step(rng.integers(0, 1682, 10))
        assert r == pytest.approx(sum(weights[k] * v for k, v in info["reward_terms"].items()))
        if term or trunc:
            env.reset()


def test_truncation_by_max_episode_steps():
    env = gym.make("RecSimEnv-v0", feedback_mode="page", max_episode_steps=3, simulator=ScriptedSimulator(False, 0.9))
    env.reset(seed=0)
    flags = [env.step(np.arange(10) + 10 * t)[3] for t in range(3)]
    assert flags == [False, False, True]
