import numpy as np
import pytest

from benchmarks.fidelity import choice_metrics, choice_scenes, popularity_scorer, random_scorer, simulator_scorer
from recsim_env.data import load_dataset
from simulators.base import SimulationRequest, UserSimulator
from simulators.fitted import FittedUserModel, FittedUserModelConfig


@pytest.fixture(scope="module")
def model(ml100k):
    return FittedUserModel.fit(ml100k)


def requests(ds, mode, n=6, k=5, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for u in rng.choice(ds.users("test"), n, replace=False):
        h = ds.history(u)
        out.append(SimulationRequest.from_history(ds, u, h.stop - h.start, rng.choice(ds.n_items, k, replace=False), mode, memory=20))
    return out


def test_is_a_user_simulator_and_fit_is_cached(model, ml100k):
    assert isinstance(model, UserSimulator)
    assert FittedUserModel.fit(ml100k) is model
    assert model.decay in model.config.decays and model.fit_report["n_train_examples"] > 10000
    # taste and popularity both carry positive weight on real choices
    assert model.choice_weights[0] > 0 and model.choice_weights[2] > 0


@pytest.mark.parametrize("mode", ["page", "feed"])
def test_batch_equals_single_calls_and_same_seed_same_answer(model, ml100k, mode):
    reqs = requests(ml100k, mode)
    batch = model.respond(reqs, [np.random.default_rng(i) for i in range(len(reqs))])
    for i, r in enumerate(reqs):
        single = model.respond([r], [np.random.default_rng(i)])[0]
        for key in ("played", "clicked", "skipped", "watch_ratio", "rating"):
            np.testing.assert_array_equal(getattr(single, key), getattr(batch[i], key))
    again = model.respond(reqs, [np.random.default_rng(i) for i in range(len(reqs))])
    assert all(np.array_equal(a.watch_ratio, b.watch_ratio, equal_nan=True) for a, b in zip(batch, again))


def test_page_mode_distribution_and_at_most_one_click(model, ml100k):
    for resp in model.respond(requests(ml100k, "page", n=30), [np.random.default_rng(i) for i in range(30)]):
        assert resp.choice_probs.shape == (6,) and resp.choice_probs.sum() == pytest.approx(1.0)
        assert resp.clicked.sum() <= 1 and np.array_equal(resp.played, resp.clicked)
        if resp.clicked.any():
            assert 1.0 <= resp.rating[resp.clicked][0] <= 5.0
            assert resp.watch_ratio[resp.clicked][0] in (0.0, 0.25, 0.5, 0.75, 1.0)


def test_feed_mode_skips_match_watch_ratio_and_repeats_are_skipped(model, ml100k):
    reqs = requests(ml100k, "feed", n=40)
    for r in reqs:
        r.repeated[:2] = True
    for resp in model.respond(reqs, [np.random.default_rng(i) for i in range(40)]):
        assert resp.played.all()
        np.testing.assert_array_equal(resp.skipped, resp.watch_ratio < 0.3)
        assert resp.skipped[:2].all() and resp.skip_probs[:2] == pytest.approx([1.0, 1.0])


def test_skip_probability_follows_taste(model, ml100k):
    """Items close to the user's watched genres are skipped less than items far from them."""
    reqs = requests(ml100k, "feed", n=60, k=40, seed=3)
    util = model.utilities(reqs)
    probs = np.stack([r.skip_probs for r in model.respond(reqs, [np.random.default_rng(0)] * 60)])
    assert np.corrcoef(util.ravel(), probs.ravel())[0, 1] < -0.5


def test_beats_popularity_on_held_out_test_users(model, ml100k):
    for negatives in ("uniform", "popular"):
        scenes = choice_scenes(ml100k, "test", per_user=3, negatives=negatives, seed=1)
        targets = np.array([s.target for s in scenes])
        fitted = choice_metrics(simulator_scorer(model)(scenes), targets)
        pop = choice_metrics(popularity_scorer(ml100k)(scenes), targets)
        chance = choice_metrics(random_scorer(scenes), targets)
        assert chance["accuracy"] == pytest.approx(0.2)
        assert fitted["accuracy"] > pop["accuracy"] + 0.03, (negatives, fitted, pop)


def test_choice_metrics_hand_computed():
    probs = np.array([[0.5, 0.5, 0.0], [0.1, 0.2, 0.7], [0.6, 0.3, 0.1]])
    m = choice_metrics(probs, np.array([0, 2, 1]))
    assert m["accuracy"] == pytest.approx((0.5 + 1 + 0) / 3)
    assert m["expected_accuracy"] == pytest.approx((0.5 + 0.7 + 0.3) / 3)
    assert m["log_loss"] == pytest.approx(-np.log([0.5, 0.7, 0.3]).mean())


def test_scenes_hold_out_test_users_and_contain_target_once(ml100k):
    scenes = choice_scenes(ml100k, "test", per_user=2, seed=0)
    test_users = set(ml100k.users("test").tolist())
    for s in scenes:
        assert s.user in test_users and len(set(s.request.slate.tolist())) == 5
        h = ml100k.history(s.user)
        later = set(ml100k.inter_item[h].tolist())
        negatives = np.delete(s.request.slate, s.target)
        assert not later & set(negatives.tolist())
        assert s.request.slate[s.target] not in s.request.history_items


def test_config_rejects_unknown_keys_and_bad_values():
    with pytest.raises(ValueError, match=r"Unknown FittedUserModelConfig keys \['slipp'\]"):
        FittedUserModelConfig.from_dict({"slipp": 0.1})
    with pytest.raises(ValueError, match="outside_quantile must be in"):
        FittedUserModelConfig(outside_quantile=1.5)


def test_fits_real_watch_ratio_dataset(tiny_playtime_dataset):
    ds = load_dataset(tiny_playtime_dataset)
    model = FittedUserModel.fit(ds, FittedUserModelConfig(min_history=2, examples_per_user=5, negatives=4))
    assert len(model.bin_low) == 11 and model.watch_weights.shape[1] == 11
    reqs = requests(ds, "feed", n=2, k=4)
    resp = model.respond(reqs, [np.random.default_rng(i) for i in range(2)])
    ratios = np.concatenate([r.watch_ratio for r in resp])
    assert np.all((ratios >= 0) & (ratios <= 2.0)) and np.isnan(np.concatenate([r.rating for r in resp])).all()
