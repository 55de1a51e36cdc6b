"""Bad input gets a clear error naming the argument (issue: reliability and API fit), and the env fits the
Gymnasium ecosystem: info layout, reset options, autoreset modes, stepping an ended episode, start-up cache."""

from __future__ import annotations

import json
import re

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

import recsim_env  # noqa: F401
from recsim_env import RecSimEnv, RecSimVectorEnv
from tests.conftest import write_atomic

NAN, INF = float("nan"), float("inf")


# ------------------------------------------------------------------------------------------- arguments
@pytest.mark.parametrize("kwargs, error, match", [
    (dict(slate_size=10**9), ValueError, r"slate_size=1000000000 exceeds the catalogue of 'ml-100k' \(1682 items\)"),
    (dict(memory_size=10**9), ValueError, r"memory_size must be in \[1, 10000\], got 1000000000"),
    (dict(action_mode="candidates", num_candidates=10**9), ValueError, r"num_candidates=1000000000 exceeds the catalogue"),
    (dict(slate_size="10"), TypeError, r"slate_size must be an int, got str '10'"),
    (dict(slate_size=True), TypeError, r"slate_size must be an int, got bool"),
    (dict(dynamics=[1]), TypeError, r"dynamics must be a UserDynamics, a dict of its fields or None, got list"),
    (dict(dynamics={"patience": 3}), ValueError, r"dynamics got unknown name\(s\) \['patience'\]"),
    (dict(simulator_kwargs=[1]), TypeError, r"simulator_kwargs must be a dict or None, got list"),
    (dict(action_mode="candidates", num_candidates=-5), ValueError, r"num_candidates must be >= 1, got -5"),
    (dict(dataset=None), TypeError, r"dataset must be a name .* got NoneType None"),
    (dict(reward_weights={"click": NAN}), ValueError, r"reward_weights\['click'\] must be finite, got nan"),
    (dict(reward_weights={"skip": -INF}), ValueError, r"reward_weights\['skip'\] must be finite, got -inf"),
    (dict(reward_weights={"skip": "high"}), TypeError, r"reward_weights\['skip'\] must be a real number, got str"),
    (dict(dynamics={"skip_cost": NAN}), ValueError, r"dynamics.skip_cost must be finite, got nan"),
    (dict(dynamics={"initial": INF}), ValueError, r"dynamics.initial must be finite"),
    (dict(profile_decay=NAN), ValueError, r"profile_decay must be finite, got nan"),
    (dict(profile_decay=100), ValueError, r"profile_decay must be > 0.0 and <= 1.0, got 100.0"),
    (dict(profile_decay=-1), ValueError, r"profile_decay must be > 0.0 and <= 1.0, got -1.0"),
    (dict(max_episode_steps=2.5), TypeError, r"max_episode_steps must be an int, got float"),
    (dict(feedback_mode=3), ValueError, r"feedback_mode must be one of \('page', 'feed'\), got 3"),
])
def test_bad_kwargs_name_the_argument(kwargs, error, match):
    with pytest.raises(error, match=match):
        RecSimEnv(**kwargs)


def test_unknown_kwarg_uses_pythons_wording():
    """TorchRL's GymEnv probes kwargs and parses Python's own message."""
    for cls, owner in ((RecSimEnv, "RecSimEnv"), (RecSimVectorEnv, "RecSimVectorEnv")):
        with pytest.raises(TypeError, match=rf"^{owner}\.__init__\(\) got an unexpected keyword argument 'frameskip'; known arguments: .*slate_size"):
            cls(frameskip=4)


@pytest.mark.parametrize("kwargs, match", [
    (dict(num_envs=10**9), r"num_envs must be in \[1, 100000\]"),
    (dict(num_envs=2, autoreset_mode="sometimes"), r"autoreset_mode must be one of \['NEXT_STEP', 'SAME_STEP', 'DISABLED'\]"),
    (dict(num_envs=2, render_mode="human"), r"RecSimVectorEnv does not render"),
])
def test_bad_vector_kwargs(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RecSimVectorEnv(**kwargs)


def _tiny(tmp_path, name: str, n_users: int, n_items: int, per_user: int):
    rng = np.random.default_rng(0)
    rows = ["user_id:token\titem_id:token\trating:float\ttimestamp:float"]
    t = 0
    for u in range(n_users):
        for i in rng.choice(n_items, min(per_user, n_items), replace=False):
            t += 1
            rows.append(f"u{u}\ti{i}\t{rng.integers(1, 6)}\t{t}")
    return write_atomic(tmp_path, name, {"inter": "\n".join(rows)})


@pytest.mark.parametrize("shape, match", [
    ((1, 50, 20), r"needs train examples and 'd' gives none: 1 train user\(s\) of 1, 1 with more than min_history=3"),
    ((5, 50, 20), r"needs valid examples and 'd' gives none: 0 valid user\(s\) of 5"),
    ((30, 2, 2), r"needs train examples .* 0 with more than min_history=3 .* needs 9 items the user never saw among the 2 items"),
    ((30, 50, 3), r"needs train examples .* 0 with more than min_history=3 interactions"),
])
def test_tiny_datasets_say_which_minimum_fails(tmp_path, shape, match):
    with pytest.raises(ValueError, match=match):
        RecSimEnv(dataset=_tiny(tmp_path, "d", *shape), slate_size=2)


# --------------------------------------------------------------------------------------------- actions
@pytest.fixture(scope="module")
def env3():
    return RecSimEnv(slate_size=3)


@pytest.mark.parametrize("action, match", [
    ([1e20, 1, 2], r"Action index 1e\+20 is out of range: expected item indices in \[0, n_items\)"),
    ([-1e20, 1, 2], r"Action index -1e\+20 is out of range"),
    ([[1, 2], [3]], r"Action must be a rectangular array of shape \(3,\) .* got a ragged or non-numeric list"),
    (np.ma.masked_array([1, 2, 3], [0, 1, 0]), r"masked array with masked entries"),
    ([1.5, 2, 3], r"non-integral values"),
    ([NAN, 2, 3], r"non-integral values"),
    ([True, False, True], r"got dtype bool"),
    (["1", "2", "3"], r"got dtype <U1"),
])
def test_malformed_actions_are_explained(env3, action, match):
    env3.reset(seed=0)
    with pytest.raises(ValueError, match=match):
        env3.step(action)


def test_unmasked_masked_array_is_its_data(env3):
    env3.reset(seed=0)
    _, _, _, _, info = env3.step(np.ma.masked_array([4, 5, 6]))
    assert info["feedback"]["item_id"].tolist() == [4, 5, 6]


def test_stepping_an_ended_episode_raises():
    env = RecSimEnv(dynamics={"initial": 0.1, "maximum": 1.0}, feedback_mode="page")
    env.reset(seed=0)
    terminated = truncated = False
    for _ in range(50):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            break
    assert terminated
    with pytest.raises(RuntimeError, match=r"episode has ended .* call env.reset\(\)"):
        env.step(env.action_space.sample())
    env.reset(seed=1)
    env.step(env.action_space.sample())  # reset makes it steppable again

    env = RecSimEnv(max_episode_steps=1)
    env.reset(seed=0)
    assert env.step(env.action_space.sample())[3]
    with pytest.raises(RuntimeError, match="episode has ended"):
        env.step(env.action_space.sample())


def test_unknown_reset_options_raise():
    env = RecSimEnv(slate_size=3)
    with pytest.raises(ValueError, match=r"understands options 'user_index' and 'history_cut', got \['user'\]"):
        env.reset(seed=0, options={"user": 3})
    env.reset(seed=0, options={})  # an empty dict is no option


def test_reset_can_start_a_given_user_at_a_given_cut():
    env = RecSimEnv(slate_size=3, memory_size=4, user_split="test")
    ds = env.unwrapped.dataset
    u = int(ds.users("train")[0])  # any split may be asked for
    h = ds.history(u)
    obs, info = env.reset(seed=0, options={"user_index": u, "history_cut": 7})
    assert info["user_index"] == u
    assert obs["history_items"].tolist() == ds.inter_item[h.start + 3 : h.start + 7].tolist()
    assert obs["consumed"].sum() == 7 and obs["consumed"][ds.inter_item[h.start + 7]] == 0
    obs2, _ = env.reset(seed=5, options={"user_index": u})  # cut drawn, user fixed
    assert env.unwrapped.batch.user[0] == u
    for bad, msg in (({"history_cut": 3}, "needs options\\['user_index'\\]"),
                     ({"user_index": ds.n_users}, "must be in \\[0, "),
                     ({"user_index": u, "history_cut": 0}, "history_cut'\\] must be in \\[1, "),
                     ({"user_index": u, "history_cut": h.stop - h.start + 1}, "must be in"),
                     ({"user_index": 1.5}, "must be an int")):
        with pytest.raises((ValueError, TypeError), match=msg):
            env.reset(seed=0, options=bad)


# ------------------------------------------------------------------------------------------------ info
@pytest.mark.parametrize("mode", ["page", "feed"])
def test_info_has_the_same_keys_at_reset_and_step(mode):
    env = RecSimEnv(feedback_mode=mode, slate_size=4)
    obs, info0 = env.reset(seed=0)
    _, _, _, _, info1 = env.step(env.action_space.sample())
    assert info0.keys() == info1.keys()
    assert not set(info1) & set(obs), "an info key equal to an observation key confuses flattening wrappers"
    assert isinstance(info1["user_index"], np.int64) and isinstance(info1["simulator_errors"], np.int64)
    assert all(isinstance(v, np.float64) for v in info1["reward_terms"].values())
    assert all(np.isnan(v) for v in info0["reward_terms"].values()) and (info0["feedback"]["item_id"] == -1).all()
    width = {"choice_probs": 5 if mode == "page" else 0, "skip_probs": 4 if mode == "feed" else 0}
    for key, n in width.items():
        assert info0[key].shape == info1[key].shape == (n,)
        assert np.isnan(info0[key]).all() and np.isfinite(info1[key]).all()


def test_vector_info_has_the_same_keys_at_reset_and_step():
    envs = RecSimVectorEnv(num_envs=3, slate_size=4)
    obs, info0 = envs.reset(seed=0)
    _, _, _, _, info1 = envs.step(envs.action_space.sample())
    assert info0.keys() == info1.keys() and not set(info1) & set(obs)
    assert info0["feedback"].keys() == info1["feedback"].keys()
    assert not info0["_feedback"].any() and info1["_feedback"].all()
    assert (info0["feedback"]["item_id"] == -1).all() and np.isnan(info0["reward_terms"]["click"]).all()


# ---------------------------------------------------------------------------------- vector env resets
def _ending_vec(mode, n=4):
    return RecSimVectorEnv(num_envs=n, autoreset_mode=mode, feedback_mode="page", slate_size=3,
                           dynamics={"initial": 0.5, "maximum": 1.0})


def _run_until_end(envs, rng):
    for _ in range(60):
        out = envs.step(rng.integers(0, 1682, (envs.num_envs, 3)))
        if (out[2] | out[3]).any():
            return out
    raise AssertionError("no sub-env ended")


def test_reset_mask_resets_only_the_masked_rows():
    envs = RecSimVectorEnv(num_envs=4, slate_size=3)
    obs0, _ = envs.reset(seed=0)
    obs1, *_ = envs.step(np.tile(np.arange(3), (4, 1)))
    mask = np.array([True, False, True, False])
    obs2, info = envs.reset(seed=10, options={"reset_mask": mask})
    for key in obs1:
        assert np.array_equal(obs2[key][~mask], obs1[key][~mask])  # untouched rows keep their state
    fresh = RecSimVectorEnv(num_envs=4, slate_size=3).reset(seed=10)[0]
    assert np.array_equal(obs2["history_items"][mask], fresh["history_items"][mask])  # seeded like a full reset
    assert np.array_equal(obs2["step"][~mask, 0], [1, 1]) and np.array_equal(obs2["step"][mask, 0], [0, 0])


@pytest.mark.parametrize("options, match", [
    ({"reset_mask": [True, False]}, r"reset_mask'\] must be a numpy bool array of shape \(2,\)"),
    ({"reset_mask": np.zeros(2, bool)}, "at least one True"),
    ({"reset_mask": np.ones(3, bool)}, r"shape \(2,\)"),
    ({"user": 1}, r"understands only options=\{'reset_mask': mask\}, got \['user'\]"),
])
def test_bad_vector_reset_options(options, match):
    envs = RecSimVectorEnv(num_envs=2, slate_size=3)
    envs.reset(seed=0)
    with pytest.raises(ValueError, match=match):
        envs.reset(options=options)


def test_autoreset_modes():
    rng = np.random.default_rng(0)
    # NEXT_STEP (default): the row after the end is reset and its action ignored
    envs = _ending_vec("next_step")
    assert envs.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP and envs.metadata["render_fps"]
    envs.reset(seed=0)
    _, _, term, trunc, _ = _run_until_end(envs, rng)
    ended = term | trunc
    obs, rew, _, _, info = envs.step(rng.integers(0, 1682, (4, 3)))
    assert (obs["step"][ended, 0] == 0).all() and (rew[ended] == 0).all() and not info["_feedback"][ended].any()

    # SAME_STEP: reset within the step, the last observation in final_obs
    envs = _ending_vec(AutoresetMode.SAME_STEP)
    assert envs.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    envs.reset(seed=0)
    obs, _, term, trunc, info = _run_until_end(envs, rng)
    ended = term | trunc
    assert np.array_equal(info["_final_obs"], ended) and (obs["step"][ended, 0] == 0).all()
    for i in np.flatnonzero(ended):
        assert info["final_obs"][i]["step"][0] >= 1 and envs.single_observation_space.contains(info["final_obs"][i])
    assert info["_feedback"][ended].all()  # the ending step's feedback is reported

    # DISABLED: an ended row must be reset with reset_mask before stepping again
    envs = _ending_vec("DISABLED")
    envs.reset(seed=0)
    _, _, term, trunc, _ = _run_until_end(envs, rng)
    ended = term | trunc
    with pytest.raises(RuntimeError, match=r"have ended and autoreset_mode is DISABLED"):
        envs.step(rng.integers(0, 1682, (4, 3)))
    obs, _ = envs.reset(options={"reset_mask": ended})
    assert (obs["step"][ended, 0] == 0).all()
    envs.step(rng.integers(0, 1682, (4, 3)))


# ---------------------------------------------------------------------------------- start-up cache
def test_fitted_model_is_cached_on_disk_by_content(tmp_path, monkeypatch, tiny_playtime_dataset):
    from recsim_env.data import load_dataset
    from simulators import fitted as fitted_module
    from simulators.base import SimulationRequest

    monkeypatch.setenv("RECSIM_CACHE", str(tmp_path / "cache"))
    ds = load_dataset(tiny_playtime_dataset)
    fitted_module._fit_cached.cache_clear()
    first = fitted_module.FittedUserModel.fit(ds)
    path = fitted_module.fit_cache_path(ds, first.config)
    assert path.is_file()
    fitted_module._fit_cached.cache_clear()
    calls = []
    monkeypatch.setattr(fitted_module.FittedUserModel, "_fit", classmethod(lambda cls, *a: calls.append(a)))
    second = fitted_module.FittedUserModel.fit(ds)
    assert not calls, "a warm fit must be read from disk, not refitted"
    req = [SimulationRequest.from_history(ds, 0, 5, np.arange(4), "feed", 10)]
    rng = lambda: [np.random.default_rng(3)]  # noqa: E731
    a, b = first.respond(req, rng())[0], second.respond(req, rng())[0]
    assert np.array_equal(a.skip_probs, b.skip_probs) and np.array_equal(a.watch_ratio, b.watch_ratio, equal_nan=True)
    assert second.decay == first.decay and second.fit_report == first.fit_report

    # another config is another key; a corrupt file is refitted with a warning, never read
    from simulators.fitted import FittedUserModelConfig

    assert fitted_module.fit_cache_path(ds, FittedUserModelConfig(l2=1e-2)) != path
    path.write_bytes(b"not an npz")
    fitted_module._fit_cached.cache_clear()
    monkeypatch.undo()
    monkeypatch.setenv("RECSIM_CACHE", str(tmp_path / "cache"))
    with pytest.warns(UserWarning, match="could not be read"):
        third = fitted_module.FittedUserModel.fit(ds)
    assert np.array_equal(third.respond(req, rng())[0].skip_probs, a.skip_probs)
    fitted_module._fit_cached.cache_clear()


# ------------------------------------------------------------------------------------------- adapters
@pytest.mark.parametrize("text, match", [
    ("", r"adapter_config.json is not valid JSON"),
    ("[1, 2]", r"is not a PEFT adapter config: expected a JSON object with a 'peft_type'"),
    ('{"peft_type": "LORA", "r": "8"}', r"integer rank 'r'"),
])
def test_malformed_adapter_config_names_the_file(tmp_path, text, match):
    from simulators.llm.models import resolve_adapter_dir

    (tmp_path / "adapter_config.json").write_text(text)
    with pytest.raises(ValueError, match=match):
        resolve_adapter_dir(str(tmp_path))


def test_gym_make_passes_errors_through():
    with pytest.raises(ValueError, match=re.escape("slate_size=100000 exceeds the catalogue")):
        gym.make("RecSimEnv-v0", slate_size=100_000)


def test_fit_cache_keeps_the_most_recent_fits(tmp_path, monkeypatch, tiny_playtime_dataset):
    import os

    from recsim_env.data import load_dataset
    from simulators import fitted as fitted_module

    monkeypatch.setenv("RECSIM_CACHE", str(tmp_path))
    folder = tmp_path / "fitted"
    folder.mkdir()
    for i in range(fitted_module.FIT_CACHE_KEEP + 3):  # older fits
        f = folder / f"old-{i}.npz"
        f.write_bytes(b"")
        os.utime(f, (1_000_000 + i, 1_000_000 + i))
    fitted_module._fit_cached.cache_clear()
    model = fitted_module.FittedUserModel.fit(load_dataset(tiny_playtime_dataset))
    fitted_module._fit_cached.cache_clear()
    kept = sorted(p.name for p in folder.glob("*.npz"))
    assert len(kept) == fitted_module.FIT_CACHE_KEEP and fitted_module.fit_cache_path(model.dataset, model.config).name in kept
    assert "old-0.npz" not in kept and f"old-{fitted_module.FIT_CACHE_KEEP + 2}.npz" in kept
