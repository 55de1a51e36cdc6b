import numpy as np
import pytest

from benchmarks.fidelity import choice_metrics, choice_scenes, popularity_scorer, random_scorer, simulator_scorer
from recsim_env.data import load_dataset
from simulators.base import SimulationRequest, UserSimulator
from recsim_env.features import co_occurrence, window_pairs
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
    # taste, popularity and item-to-item co-occurrence all carry positive weight on real choices
    assert model.choice_weights[0] > 0 and model.choice_weights[2] > 0 and model.choice_weights[4] > 0
    # co-occurrence of recent items predicts held-out (valid) choices: it beats the model without it
    no_co = FittedUserModel.fit(ml100k, FittedUserModelConfig(co_window=0))
    best = lambda m: max(d["valid_loglik"] for d in m.fit_report["decays"].values())  # noqa: E731
    assert no_co.choice_weights[4] == 0 and best(model) > best(no_co) + 0.1


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
    with pytest.raises(ValueError, match=r"outside_quantile'\] must be > 0.0 and <= 1.0, got 1.5"):
        FittedUserModelConfig(outside_quantile=1.5)
    with pytest.raises(TypeError, match=r"simulator_kwargs\['memory'\] must be an int, got str"):
        FittedUserModelConfig.from_dict({"memory": "50"})
    for bad, match in (({"l2": -1.0}, r"l2'\] must be >= 0.0"), ({"slip": float("nan")}, r"slip'\] must be finite"),
                       ({"decays": [0.9, 1.5]}, r"decays'\] values must be > 0.0 and <= 1.0, got 1.5")):
        with pytest.raises(ValueError, match=match):
            FittedUserModelConfig.from_dict(bad)


def test_fits_real_watch_ratio_dataset(tiny_playtime_dataset):
    ds = load_dataset(tiny_playtime_dataset)
    model = FittedUserModel.fit(ds, FittedUserModelConfig(min_history=2, examples_per_user=5, negatives=4))
    assert len(model.bin_low) == 11 and model.watch_weights.shape[1] == 11
    reqs = requests(ds, "feed", n=2, k=4)
    resp = model.respond(reqs, [np.random.default_rng(i) for i in range(2)])
    ratios = np.concatenate([r.watch_ratio for r in resp])
    assert np.all((ratios >= 0) & (ratios <= 2.0)) and np.isnan(np.concatenate([r.rating for r in resp])).all()


def test_window_pairs_hand_computed():
    # sequence 2, 0, 1 over 3 items: window 1 pairs (2,0) (0,2) (0,1) (1,0); window 2 adds (2,1) (1,2)
    codes = window_pairs(np.array([2, 0, 1]), 1, 3)
    assert sorted((c // 3, c % 3) for c in codes) == [(0, 1), (0, 2), (1, 0), (2, 0)]
    assert len(window_pairs(np.array([2, 0, 1]), 2, 3)) == 6
    assert len(window_pairs(np.array([4]), 3, 5)) == 0
    # a repeated item never pairs with itself
    assert sorted((c // 5, c % 5) for c in window_pairs(np.array([1, 1, 2]), 2, 5)) == [(1, 2), (2, 1)]


def test_co_occurrence_counts_and_leave_own_user_out(tiny_playtime_dataset):
    """A train user's own contribution removed == the counts built from the other train users."""
    from simulators.fitted import _OwnHistories

    ds = load_dataset(tiny_playtime_dataset)
    window = 3
    co = co_occurrence(ds, window)
    n = ds.n_items
    train = ds.users("train")
    user = int(train[0])
    seq = ds.inter_item[ds.history(user)]
    others_counts = np.zeros((n, n))
    others_users = np.zeros(n)
    for u in train[1:]:
        s = ds.inter_item[ds.history(u)]
        others_users[np.unique(s)] += 1
        np.add.at(others_counts.reshape(-1), window_pairs(s, window, n), 1)
    assert np.array_equal(co.users, others_users + np.isin(np.arange(n), seq))

    hist = seq[None, :6]
    unseen = np.setdiff1d(np.arange(n), seq)[:2]
    items = np.concatenate([seq[6:9], unseen])[None, :]
    got = co.pair_affinity(hist, items, *_OwnHistories(ds, window).contribution(np.array([user]), hist, items))
    expect = others_counts[hist[0][:, None], items[0][None, :]] / np.sqrt(
        np.maximum(others_users[hist[0]], 1)[:, None] * np.maximum(others_users[items[0]], 1)[None, :]
    )
    np.testing.assert_allclose(got[0], expect, rtol=1e-6)
    # a held-out user's view of the same pairs uses every train user
    assert (co.pair_affinity(hist, items)[0][:, :3] > got[0][:, :3]).any()


def test_fidelity_co_occurrence_baseline_prefers_items_seen_together(ml100k):
    from benchmarks.fidelity import co_occurrence_scorer

    scenes = choice_scenes(ml100k, "test", per_user=2, negatives="popular", seed=2)
    targets = np.array([s.target for s in scenes])
    probs = co_occurrence_scorer(ml100k)(scenes)
    np.testing.assert_allclose(probs.sum(1), 1.0)
    assert choice_metrics(probs, targets)["accuracy"] > 0.4


def test_compiled_answers_carry_the_numpy_utilities(model, ml100k):
    """The feed answer's P(skip) = 1 - (1 - slip) sigmoid(u - b_none) with u from the numpy choice features (the ones
    the model was fitted on); page: softmax over the slate and 'none' at b_none, mixed with the slip."""
    reqs = requests(ml100k, "feed", n=8, k=6)
    u = model.utilities(reqs)
    p_skip = np.stack([r.skip_probs for r in model.respond(reqs, [np.random.default_rng(i) for i in range(len(reqs))])])
    slip = model.config.slip
    np.testing.assert_allclose(p_skip, 1 - (1 - slip) / (1 + np.exp(-(u - model.b_none))), rtol=1e-6, atol=1e-9)
    page = [SimulationRequest(**{**r.__dict__, "mode": "page"}) for r in reqs]
    probs = np.stack([r.choice_probs for r in model.respond(page, [np.random.default_rng(i) for i in range(len(page))])])
    z = np.exp(np.concatenate([u, np.full((len(u), 1), model.b_none)], 1))
    np.testing.assert_allclose(probs, (1 - slip) * z / z.sum(1, keepdims=True) + slip / (u.shape[1] + 1), rtol=1e-6, atol=1e-9)


def test_compiled_watch_bins_follow_the_numpy_watch_head(model, ml100k):
    """The kernel samples watch bins inline; over many draws the ratings of watched items average to the numpy watch
    head's expected rating (``expected_ratings``), item by item."""
    req = requests(ml100k, "feed", n=1, k=5, seed=3)[0]
    n = 12000
    answers = model.respond([req] * n, [np.random.default_rng(i) for i in range(n)])
    ratings = np.stack([a.rating for a in answers])  # NaN where the user was not interested
    want = model.expected_ratings([req])[0]
    for k in range(5):
        got = ratings[:, k][~np.isnan(ratings[:, k])]
        assert len(got) > 100, (k, len(got))
        assert abs(got.mean() - want[k]) < 4 * got.std() / np.sqrt(len(got)) + 0.02, (k, got.mean(), want[k])
