"""Sessions cut from timestamps: exact boundaries on planted logs, lengths and hazards equal hand counts."""

import numpy as np
import pytest

from recsim_env.data import load_dataset
from recsim_env.sessions import leave_hazard, session_lengths, sessions


@pytest.fixture
def planted(tmp_path):
    d = tmp_path / "planted"
    d.mkdir()
    rows = ["user_id:token\titem_id:token\trating:float\ttimestamp:float"]
    # user a: items at 0, 10, 20 s, then 5000 s (a new session at a 1-hour gap), then 5010; user b: 0, 100000
    for user, times, ratings in (("a", [0, 10, 20, 5000, 5010], [5, 1, 4, 2, 5]), ("b", [0, 100000], [1, 4])):
        rows += [f"{user}\t{i}\t{r}\t{t}" for i, (t, r) in enumerate(zip(times, ratings))]
    (d / "planted.inter").write_text("\n".join(rows) + "\n")
    return load_dataset(d)


def test_sessions_break_at_gaps_and_between_users(planted):
    sid, idx = sessions(planted, 3600)
    assert len(idx) == 7 and len(np.unique(sid)) == 4
    assert sorted(session_lengths(planted, 3600).tolist()) == [1, 1, 2, 3]
    assert sorted(session_lengths(planted, 10).tolist()) == [1, 1, 1, 1, 1, 1, 1]  # every gap >= 10 s
    assert sorted(session_lengths(planted, 1e9).tolist()) == [2, 5]
    with pytest.raises(ValueError, match="gap_seconds must be > 0"):
        sessions(planted, 0)


def test_leave_hazard_equals_hand_counts(planted):
    h = leave_hazard(planted, 3600)
    # session ends after: a@20 (rating 4), a@5010 (5), b@0 (1), b@100000 (4)
    assert h["liked (rating >= 4)"] == {"hazard": pytest.approx(3 / 4), "n": 4}
    assert h["disliked (rating <= 2)"] == {"hazard": pytest.approx(1 / 3), "n": 3}
    assert h["position 1"] == {"hazard": pytest.approx(2 / 4), "n": 4}
    assert h["positions 2-5"] == {"hazard": pytest.approx(2 / 3), "n": 3}


def test_leave_model_learns_a_planted_rule_and_replays_it(tmp_path):
    from recsim_env.sessions import LeaveModel, ks_distance

    d = tmp_path / "rule"
    d.mkdir()
    rng = np.random.default_rng(0)
    rows = ["user_id:token\titem_id:token\trating:float\ttimestamp:float"]
    for u in range(60):  # sessions end exactly after a rating of 1 (then a day's gap)
        t = 0
        for i in range(40):
            r = 1 if rng.random() < 0.2 else int(rng.integers(3, 6))
            rows.append(f"{u}\t{i}\t{r}\t{t}")
            t += 86_400 if r == 1 else 60
    (d / "rule.inter").write_text("\n".join(rows) + "\n")
    ds = load_dataset(d)
    model = LeaveModel.fit(ds, 3600, np.arange(ds.n_users))
    assert model.weights[2] > 5 and model.hazard(3, True, False, 10) > 0.95  # disliked (rating 1): leaves
    assert model.hazard(3, False, True, 10) < 0.05
    assert model.hazard(np.array([[0, 1]]), np.array([[True, False]]), False, 4).shape == (1, 2)
    real = session_lengths(ds, 3600)
    assert ks_distance(model.replay(ds, np.arange(ds.n_users), np.random.default_rng(1)), real) < 0.05
    assert ks_distance(np.array([1, 2, 3]), np.array([1, 2, 3])) == 0.0
    assert ks_distance(np.array([1, 1]), np.array([5, 5])) == 1.0


def test_hazard_never_falls_below_the_floor_and_weights_are_checked():
    from recsim_env.sessions import FEATURES, MIN_HAZARD, LeaveModel

    never = LeaveModel(np.r_[-1e3, np.zeros(len(FEATURES) - 1)], 3600)
    assert np.all(never.hazard(np.arange(5), False, True, 100) == MIN_HAZARD)
    with pytest.raises(ValueError, match="needs 6 weights"):
        LeaveModel(np.zeros(4), 3600)


def test_fitted_leave_model_is_kept_on_disk_and_read_back(ml100k, tmp_path, monkeypatch):
    import recsim_env.sessions as sessions_module

    monkeypatch.setenv("RECSIM_CACHE", str(tmp_path))
    monkeypatch.setattr(sessions_module, "_FITTED", {})
    first = sessions_module.fitted_leave_model(ml100k)
    (kept,) = (tmp_path / "sessions").glob("ml-100k-*.json")
    monkeypatch.setattr(sessions_module, "_FITTED", {})
    monkeypatch.setattr(sessions_module.LeaveModel, "fit", None)  # a second process reads the file: no fit
    np.testing.assert_array_equal(sessions_module.fitted_leave_model(ml100k).weights, first.weights)
    kept.write_text("{not json")  # unreadable: refitted (with the real fit), not an error
    monkeypatch.undo()
    monkeypatch.setenv("RECSIM_CACHE", str(tmp_path))
    monkeypatch.setattr(sessions_module, "_FITTED", {})
    np.testing.assert_allclose(sessions_module.fitted_leave_model(ml100k).weights, first.weights)
