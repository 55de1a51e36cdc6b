"""Rollout metrics against values computed by hand on a scripted two-episode run."""

import numpy as np
import pytest

from agents.rollout import METRICS, EpisodeStats, rollout_metrics
from benchmarks.rollout import summarize
from recsim_env.features import ItemFeatures


def features():
    text = np.array([[1, 0], [0, 1], [1, 0], [0.6, 0.8]], dtype=np.float32)  # unit vectors
    count = np.array([6.0, 2.0, 0.0, 0.0])
    z = np.zeros(4, np.float32)
    return ItemFeatures(text=text, popularity=z, mean_rating=z, mean_watch_ratio=z, count=count, vocabulary=("a", "b"))


def info(items, clicked, skipped, watch, repeat=0.0):
    """A step's info in the env's layout (``recsim_env.core.empty_feedback``): None = not played."""
    played = np.array([s is not None for s in skipped])
    return {
        "feedback": {
            "item_id": np.array(items), "clicked": np.array(clicked), "played": played,
            "skipped": np.array([bool(s) for s in skipped]), "watch_ratio": np.array([-1.0 if w is None else w for w in watch]),
        },
        "reward_terms": {"repeat": repeat},
    }


def test_metrics_match_hand_computed_values():
    a, b = EpisodeStats(), EpisodeStats()
    # feed-style episode: 2 steps x 2 items, all played
    a.add(1.5, info([0, 1], [True, False], [False, True], [0.95, 0.1]))
    a.add(0.5, info([2, 3], [True, False], [False, True], [0.5, 0.2], repeat=1.0))
    # page-style episode: 1 step, one clicked item of 2
    b.add(2.0, info([0, 3], [True, False], [False, None], [0.8, None]))
    m = rollout_metrics([a, b], features())
    assert m["return"] == pytest.approx((2.0 + 2.0) / 2)
    assert m["session_length"] == pytest.approx(1.5)
    assert m["click_rate"] == pytest.approx(3 / 6)
    assert m["fast_skip_rate"] == pytest.approx(2 / 5)
    watch = [0.95, 0.1, 0.5, 0.2, 0.8]
    assert m["total_play_rate"] == pytest.approx(np.mean(watch))
    assert m["person_play_rate"] == pytest.approx((np.mean(watch[:4]) + 0.8) / 2)
    assert m["finish_rate"] == pytest.approx(1 / 5)
    assert m["play_rate_30"] == pytest.approx(3 / 5)
    assert m["repeat_rate"] == pytest.approx(1 / 6)
    assert m["coverage"] == pytest.approx(4 / 4)
    # slates: {0,1}: cos 0 -> 1; {2,3}: cos .6 -> .4; {0,3}: cos .6 -> .4
    assert m["intra_list_diversity"] == pytest.approx((1.0 + 0.4 + 0.4) / 3)
    p = (np.array([6.0, 2.0, 0.0, 0.0]) + 1) / (8 + 4)
    shown = [0, 1, 2, 3, 0, 3]
    assert m["novelty"] == pytest.approx(np.mean(-np.log2(p[shown])))


def test_summary_gives_student_t_interval():
    from scipy.stats import t

    per_seed = [{k: v for k in METRICS} for v in (1.0, 2.0, 3.0)]
    mean, half = summarize(per_seed)["return"]
    assert mean == pytest.approx(2.0) and half == pytest.approx(t.ppf(0.975, 2) * 1.0 / np.sqrt(3))
    assert np.isnan(summarize(per_seed[:1])["click_rate"][1])
