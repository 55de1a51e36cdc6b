"""The compiled per-step kernels against plain numpy statements of what they compute (the numpy the env ran before)."""

import numpy as np
import pytest
from scipy.special import expit

from recsim_env.features import item_features, recency_weights, taste_profiles
from recsim_env.kernels import remember, slate_repeats
from recsim_env.rewards import reward_terms
from recsim_env.sessions import MIN_HAZARD, LeaveModel, _features


def memories(n, H, n_items, rng):
    hist = rng.integers(0, n_items, (n, H))
    hist[rng.random((n, H)) < 0.2] = -1
    hist = np.sort(hist, 1)  # padding (-1) on the left, as the env keeps memories
    skipped = (rng.random((n, H)) < 0.3) & (hist >= 0)
    ratio = np.where(hist >= 0, rng.random((n, H)), np.nan)
    ratio[rng.random((n, H)) < 0.1] = np.nan  # unknown watch ratios
    return hist, skipped, ratio


def test_taste_profiles_equal_the_dense_recency_weighted_sums(ml100k):
    feats = item_features(ml100k)
    hist, skipped, ratio = memories(40, 30, ml100k.n_items, np.random.default_rng(0))
    hist[0] = -1  # an empty memory: zero profiles, no mean ratio
    pos, neg, mean = taste_profiles(feats, hist, ratio, skipped, 0.8)
    w = recency_weights(hist, 0.8)
    vecs = feats.text[np.maximum(hist, 0)].astype(np.float64)
    for got, weights in ((pos, w * ~skipped), (neg, w * skipped)):
        want = np.einsum("nh,nhd->nd", weights, vecs)
        norm = np.linalg.norm(want, axis=1, keepdims=True)
        want = np.divide(want, norm, out=np.zeros_like(want), where=norm > 0)
        np.testing.assert_allclose(got, want, atol=1e-6)
    known = (hist >= 0) & ~np.isnan(ratio)
    with np.errstate(invalid="ignore"):
        np.testing.assert_allclose(mean, np.where(known, ratio, 0).sum(1) / known.sum(1), equal_nan=True)
    assert np.isnan(mean[0]) and not pos[0].any()


def test_slate_repeats_mark_consumed_items_and_later_duplicates():
    consumed = np.zeros((3, 20), bool)
    consumed[1, [4, 7]] = True
    items = np.array([[1, 2, 1, 3], [4, 5, 6, 7], [9, 9, 9, 8]])
    got = slate_repeats(consumed, np.array([0, 1, 2]), items)
    np.testing.assert_array_equal(got, [[0, 0, 1, 0], [1, 0, 0, 1], [0, 1, 1, 0]])


def test_reward_terms_hand_computed():
    played = np.array([[True, True, True, False]])
    clicked = np.array([[True, False, True, False]])
    skipped = np.array([[False, True, False, True]])
    watch = np.array([[0.9, 0.1, np.nan, 0.8]])
    repeated = np.array([[False, False, True, True]])
    # clicks 2; watch 0.9 + 0.1 + 0 (unknown); one played skip; repeats 2; one like (0.9 >= 0.7, not skipped)
    np.testing.assert_allclose(reward_terms(played, clicked, skipped, watch, repeated, 0.7), [[2, 1.0, 1, 2, 1]])


@pytest.mark.parametrize("K", [3, 12])  # fewer and more new items than the memory holds (H = 8)
def test_memory_keeps_the_last_H_of_memory_then_the_taken_items_in_order(K):
    rng = np.random.default_rng(K)
    n, H, n_items = 5, 8, 50
    hist, skipped_h, ratio = memories(n, H, n_items, rng)
    when = np.where(hist >= 0, rng.random((n, H)), np.nan)
    items = rng.integers(0, n_items, (n, K))
    played = rng.random((n, K)) < 0.6  # any subset (a custom simulator need not play a prefix)
    played[0] = False
    skipped = rng.random((n, K)) < 0.5
    watch = rng.random((n, K))
    state = [a.copy() for a in (hist, ratio, skipped_h, when)]
    count, consumed = np.zeros(n, np.int64), np.zeros((n, n_items), bool)
    remember(np.arange(n), items, played, skipped, watch, *state, count, consumed)
    for i in range(n):
        m = played[i]
        for arr, old, new in zip(state, (hist, ratio, skipped_h, when), (items, watch, skipped, np.full((n, K), np.nan))):
            np.testing.assert_array_equal(arr[i], np.concatenate([old[i], new[i][m]])[-H:])
        assert count[i] == m.sum() and set(np.flatnonzero(consumed[i])) == set(items[i][m])


def test_page_memory_appends_the_clicked_item_only():
    hist = np.array([[-1, 3, 4], [1, 2, 3]])
    state = [hist.copy(), np.zeros((2, 3)), np.zeros((2, 3), bool), np.zeros((2, 3))]
    count, consumed = np.zeros(2, np.int64), np.zeros((2, 10), bool)
    clicked = np.array([[False, True], [False, False]])
    remember(np.array([0, 1]), np.array([[7, 8], [5, 6]]), clicked, np.array([[False, True], [False, False]]),
                  np.array([[0.5, 0.2], [0.9, 0.9]]), *state, count, consumed)
    np.testing.assert_array_equal(state[0], [[3, 4, 8], [1, 2, 3]])
    assert state[2][0, -1] and state[1][0, -1] == 0.2 and list(count) == [1, 0] and consumed[0, 8] and not consumed[1].any()


def test_leave_hazard_equals_the_fitted_logistic_with_its_floor():
    model = LeaveModel(np.array([-3.9, -0.6, 0.13, -0.13, 0.5, 0.35]), 3600.0)
    rng = np.random.default_rng(0)
    pos, ten = rng.integers(0, 50, 200), rng.integers(0, 700, 200)
    dis, liked = rng.random(200) < 0.3, rng.random(200) < 0.5
    want = np.maximum(MIN_HAZARD, expit(_features(pos, dis, liked, ten) @ model.weights))
    np.testing.assert_allclose(model.hazard(pos, dis, liked, ten), want, rtol=1e-12)
    floor = LeaveModel(np.array([-30.0, 0, 0, 0, 0, 0]), 3600.0)
    assert np.all(floor.hazard(pos, dis, liked, ten) == MIN_HAZARD)
