"""RecSimEnv-v1: sessions end by the leaving model (recsim_env.sessions.LeaveModel), v0 keeps patience."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env

import recsim_env
from recsim_env import RecSimEnv
from recsim_env.sessions import FEATURES, MIN_HAZARD, LeaveModel
from simulators.base import SimulationResponse


def model(**w) -> LeaveModel:
    """A LeaveModel with the named weights (others 0), e.g. model(**{"1": 50}) always leaves."""
    return LeaveModel(np.array([w.get(name, 0.0) for name in FEATURES]), 3600)


class Pleased:
    """Test double: feed: watches every item to 0.9; page: clicks the first item (``click=False``: nothing)."""

    def __init__(self, click: bool = True, ratio: float = 0.9):
        self.click, self.ratio = click, ratio

    def respond(self, requests, rngs):
        out = []
        for r in requests:
            k = len(r.slate)
            if r.mode == "feed":
                played = clicked = np.ones(k, bool)
            else:
                clicked = np.zeros(k, bool)
                clicked[0] = self.click
                played = clicked.copy()
            out.append(SimulationResponse(played=played, clicked=clicked, skipped=played & (self.ratio < 0.3),
                                          watch_ratio=np.where(played, self.ratio, np.nan), rating=np.full(k, np.nan)))
        return out


def test_v1_is_registered_with_the_fitted_model_and_v0_keeps_patience():
    assert recsim_env.ENV_ID == "RecSimEnv-v1"
    v1, v0 = gym.make("RecSimEnv-v1"), gym.make("RecSimEnv-v0")
    assert v1.unwrapped.config.session_end == "fitted" and v1.unwrapped.batch.leave_model is not None
    assert v0.unwrapped.config.session_end == "patience" and v0.unwrapped.batch.leave_model is None
    w = dict(zip(FEATURES, v1.unwrapped.batch.leave_model.weights))
    assert w["first"] > 0 and w["log(1+pos)"] < 0  # first items end sessions most often; the hazard then falls
    with pytest.raises(ValueError, match="session_end must be 'patience'"):
        RecSimEnv(session_end="tired")


def test_feed_user_who_leaves_after_the_first_item_saw_nothing_after_it():
    env = RecSimEnv(simulator=Pleased(), session_end=model(**{"1": 50.0}), slate_size=5, memory_size=8)
    obs, _ = env.reset(seed=0)
    before = obs["history_items"].copy()
    slate = np.flatnonzero(obs["consumed"] == 0)[:5]
    obs, reward, term, trunc, info = env.step(slate)
    fb = info["feedback"]
    assert term and not trunc
    assert fb["played"].tolist() == [True, False, False, False, False]
    assert fb["clicked"].tolist() == [True, False, False, False, False]
    assert fb["watch_ratio"].tolist() == [0.9, -1, -1, -1, -1]
    assert reward == pytest.approx(1.0 + 0.9)  # only the seen item counts (click 1, watch_ratio 1)
    assert obs["history_items"].tolist() == before[1:].tolist() + [slate[0]]
    assert obs["consumed"][slate[0]] == 1 and not obs["consumed"][slate[1:]].any()
    assert obs["patience"][0] == pytest.approx(env.config.dynamics.initial)  # patience is not used in v1


def test_page_without_a_click_is_a_disliked_interaction():
    leaves_if_disliked = model(**{"1": -50.0, "disliked": 100.0})
    empty = RecSimEnv(simulator=Pleased(click=False), session_end=leaves_if_disliked, feedback_mode="page")
    empty.reset(seed=0)
    assert empty.step(np.arange(10))[2]
    liked = RecSimEnv(simulator=Pleased(), session_end=leaves_if_disliked, feedback_mode="page")
    obs, _ = liked.reset(seed=0)
    for _ in range(5):
        obs, _, term, _, _ = liked.step(np.flatnonzero(obs["consumed"] == 0)[:10])
        assert not term
    # a skipped click is disliked too
    skipper = RecSimEnv(simulator=Pleased(ratio=0.1), session_end=leaves_if_disliked, feedback_mode="page")
    obs, _ = skipper.reset(seed=0)
    assert skipper.step(np.flatnonzero(obs["consumed"] == 0)[:10])[2]


def test_a_user_always_tires_even_when_pleased_every_time():
    """The hazard floor: weights that never leave still end every session (P(no end in 2,000 items) ~ 0.14 per
    session with the floor 0.001: run 8 sessions to 20,000 items, P(any still going) < 1e-7)."""
    env = RecSimEnv(simulator=Pleased(), session_end=model(**{"1": -1e3}), slate_size=10)
    lengths = []
    for ep in range(8):
        obs, _ = env.reset(seed=ep)
        for t in range(2_000):
            obs, _, term, trunc, info = env.step(np.arange(10) + 10 * (t % 150))
            if term:
                lengths.append(t)
                break
        else:
            pytest.fail("a session of 20,000 pleasing items never ended: the hazard floor does not work")
    assert np.mean(lengths) * 10 == pytest.approx(1 / MIN_HAZARD, rel=0.8)


@pytest.mark.parametrize("mode", ["feed", "page"])
def test_v1_passes_the_gymnasium_checker_and_replays_exactly(mode):
    gym_check_env(RecSimEnv(session_end="fitted", feedback_mode=mode), skip_render_check=True)

    def run(seed):
        env = gym.make("RecSimEnv-v1", feedback_mode=mode)
        obs, _ = env.reset(seed=seed)
        rng = np.random.default_rng(seed)
        out = []
        for _ in range(200):
            obs, r, term, trunc, info = env.step(rng.choice(env.action_space.nvec[0], 10, replace=False))
            out.append((r, term, info["feedback"]["played"].tolist()))
            if term or trunc:
                obs, _ = env.reset()
        return out

    assert run(3) == run(3)


def test_vector_v1_equals_single_envs():
    envs = gym.make_vec("RecSimEnv-v1", num_envs=3, vectorization_mode="vector_entry_point")
    singles = [gym.make("RecSimEnv-v1") for _ in range(3)]
    envs.reset(seed=10)
    for i, e in enumerate(singles):
        e.reset(seed=10 + i)
    rng = np.random.default_rng(0)
    ended = np.zeros(3, bool)
    for _ in range(15):
        a = np.stack([rng.choice(1682, 10, replace=False) for _ in range(3)])
        _, r, term, trunc, info = envs.step(a)
        for i, e in enumerate(singles):
            if ended[i]:
                continue
            _, ri, ti, tri, ii = e.step(a[i])
            assert ri == pytest.approx(r[i]) and ti == term[i]
            assert ii["feedback"]["played"].tolist() == info["feedback"]["played"][i].tolist()
            ended[i] = ti or tri
        if ended.all():
            break
