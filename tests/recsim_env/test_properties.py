"""Property tests (hypothesis, bounded and derandomised): random valid actions in all four modes keep every
observation inside ``observation_space`` with finite rewards equal to the weighted terms, at most one click per page
and no click on a repeat; random malformed actions and kwargs always raise ValueError / TypeError naming the input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recsim_env import RecSimEnv
from recsim_env.rewards import REWARD_TERMS, RewardWeights

SETTINGS = dict(max_examples=20, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
MODES = [(f, a) for f in ("page", "feed") for a in ("catalog", "candidates")]
K, M = 4, 12


@pytest.fixture(scope="module")
def envs():
    return {(f, a): RecSimEnv(feedback_mode=f, action_mode=a, slate_size=K, num_candidates=M, max_episode_steps=6)
            for f, a in MODES}


def _slates(high: int):
    return st.lists(st.lists(st.integers(0, high - 1), min_size=K, max_size=K), min_size=1, max_size=6)


@pytest.mark.parametrize("mode", MODES, ids=lambda m: "-".join(m))
@settings(**SETTINGS)
@given(seed=st.integers(0, 2**31 - 1), data=st.data())
def test_valid_actions_keep_every_invariant(envs, mode, seed, data):
    env = envs[mode]
    page, catalog = mode[0] == "page", mode[1] == "catalog"
    slates = data.draw(_slates(env.dataset.n_items if catalog else M))
    weights = RewardWeights().as_array()
    obs, _ = env.reset(seed=seed)
    assert env.observation_space.contains(obs)
    for slate in slates:
        items = np.asarray(slate) if catalog else obs["candidates"][slate]
        seen = obs["consumed"].astype(bool).copy() if catalog else None
        obs, reward, terminated, truncated, info = env.step(slate)
        assert env.observation_space.contains(obs), {k: (v.min(), v.max()) for k, v in obs.items()}
        terms = np.array([info["reward_terms"][t] for t in REWARD_TERMS])
        assert np.isfinite(reward) and np.isfinite(terms).all()
        assert reward == pytest.approx(float(terms @ weights))
        clicked = info["feedback"]["clicked"]
        if page:
            assert clicked.sum() <= 1
        duplicate = np.array([items[k] in items[:k] for k in range(K)])
        repeated = duplicate | (seen[items] if catalog else False)
        assert not (clicked & repeated).any(), "a repeat was clicked"
        assert terms[REWARD_TERMS.index("repeat")] >= repeated.sum()
        if terminated or truncated:
            obs, _ = env.reset(seed=seed + 1)


_BAD_ACTIONS = st.one_of(
    st.lists(st.integers(0, 10), min_size=0, max_size=K - 1),  # too short
    st.lists(st.integers(0, 10), min_size=K + 1, max_size=K + 3),  # too long
    st.lists(st.integers(-10**30, -1) | st.integers(10**6, 10**30), min_size=K, max_size=K),  # out of range
    st.lists(st.floats(0.1, 0.9) | st.just(float("nan")) | st.just(float("inf")), min_size=K, max_size=K),
    st.lists(st.text(max_size=3), min_size=K, max_size=K),
    st.lists(st.lists(st.integers(0, 5), max_size=3), min_size=K, max_size=K),  # nested / ragged
    st.just(None), st.just({"slate": [1, 2, 3, 4]}),
)


@settings(**SETTINGS)
@given(action=_BAD_ACTIONS)
def test_malformed_actions_raise_value_error_naming_the_action(envs, action):
    env = envs[("feed", "catalog")]
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"^Action "):
        env.step(action)


_BAD_VALUES = st.one_of(st.just(float("nan")), st.just(float("inf")), st.just(-float("inf")), st.text(max_size=3),
                        st.just([1]), st.just(None), st.just(True), st.integers(-10**12, 0), st.integers(10**9, 10**12))
_KWARGS = ("slate_size", "num_candidates", "memory_size", "min_history", "max_episode_steps", "profile_decay",
           "feedback_mode", "action_mode", "user_split", "simulator_kwargs", "reward_weights", "dynamics", "dataset")


def _legal(name: str, field: str | None, value) -> bool:
    """Whether a drawn value is in fact a valid argument (the strategy draws mostly bad ones)."""
    number = isinstance(value, int) and not isinstance(value, bool)
    if value is None:
        return field is None and name in ("max_episode_steps", "simulator_kwargs", "reward_weights", "dynamics")
    if name == "reward_weights":
        return number
    if name == "dynamics":
        return number and (value > 0 or field not in ("initial", "maximum") and value == 0) and field != "initial"
    if name == "max_episode_steps":
        return number and value >= 1
    return name == "user_split" and value in ("train", "valid", "test", "all")


@settings(**SETTINGS)
@given(name=st.sampled_from(_KWARGS), value=_BAD_VALUES, data=st.data())
def test_malformed_kwargs_raise_naming_the_argument(name, value, data):
    field = None
    if name == "reward_weights":  # inside a dict of weights / of dynamics fields
        field = data.draw(st.sampled_from(REWARD_TERMS))
    elif name == "dynamics":
        field = data.draw(st.sampled_from(["initial", "maximum", "skip_cost", "empty_page_cost", "like_gain"]))
    if _legal(name, field, value):
        return
    kwargs = {name: value if field is None else {field: value}}
    if name == "num_candidates":
        kwargs["action_mode"] = "candidates"
    with pytest.raises((ValueError, TypeError, FileNotFoundError)) as err:
        RecSimEnv(**kwargs)
    message = str(err.value)
    assert (field or name) in message or name.rstrip("s") in message, message
