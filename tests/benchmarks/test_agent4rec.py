"""Agent4Rec protocol: its scenes keep the protocol's invariants at every ratio; rating metrics equal hand counts."""

import numpy as np
import pytest

from benchmarks.fidelity import contenders_for, like_requests
from benchmarks.protocols import agent4rec


@pytest.mark.parametrize("ratio", [1, 3, 9])
def test_scenes_hold_out_the_last_real_items_among_never_interacted_ones(ml100k, ratio):
    reqs, truth = like_requests(ml100k, "test", positives=5, ratio=ratio)
    assert reqs and all(len(r.slate) == 5 * (1 + ratio) and t.sum() == 5 for r, t in zip(reqs, truth))
    for r, t in list(zip(reqs, truth))[:20]:
        h = ml100k.history(r.user)
        log = ml100k.inter_item[h]
        assert set(np.asarray(r.slate)[t]) == set(log[-5:])  # the user's last 5 real items, each once
        assert not np.isin(np.asarray(r.slate)[~t], log).any() and len(set(r.slate)) == len(r.slate)
        np.testing.assert_array_equal(r.history_items, log[:-5][-30:])  # the memory ends before the held-out items
        assert r.history_count == len(log) - 5 and ml100k.split[r.user] == ml100k.SPLITS["test"]


def test_rating_metrics_hand_computed():
    m = agent4rec.rating_metrics(np.array([3.0, 4.0, np.nan, 2.0]), np.array([4.0, 4.0, 5.0, 5.0]))
    # pairs (3,4), (4,4), (2,5): errors -1, 0, -3
    assert m["n"] == 3 and m["mae"] == pytest.approx(4 / 3) and m["rmse"] == pytest.approx(np.sqrt(10 / 3))
    assert np.isnan(agent4rec.rating_metrics(np.array([np.nan]), np.array([1.0]))["rmse"])


def test_protocol_reports_every_ratio_and_ratings_with_baselines(ml100k):
    contenders = contenders_for(["popularity", "fitted"], ml100k) + agent4rec.mean_rating_contenders(ml100k)
    res = agent4rec.evaluate(ml100k, contenders)
    rows = res["rows"]
    for r in agent4rec.RATIOS:  # the real items are a (1 + r)-th of each feed
        assert rows["fitted"][f"like 1:{r}"]["positive_rate"] == pytest.approx(1 / (1 + r))
    assert "rating" not in rows["popularity"] and "like 1:1" not in rows["mean rating (train users)"]
    for key, m in (("f1", rows["fitted"]["like 1:3"]), ("auc", rows["fitted"]["like 1:3"]), ("rmse", rows["fitted"]["rating"])):
        lo, hi = m[f"{key}_ci"]  # bootstrap intervals over users around each figure
        assert lo <= m[key] <= hi and lo < hi
    fitted, glob = rows["fitted"]["rating"], rows["mean rating (train users)"]["rating"]
    assert fitted["n"] == glob["n"] > 0 and fitted["rmse"] < glob["rmse"]  # the fitted watch head beats the global mean
    text = agent4rec.format_results(res, ml100k.name, "cmd")
    assert text.count("## Like / dislike") == 3 and text.count("AlignUSER 0.832") == 1 and "same protocols" not in text


def test_cli_runs_the_protocol_and_refuses_add_to(tmp_path, capsys):
    from recsim_cli import main

    out = tmp_path / "a4r"
    assert main(["eval-simulator", "--protocol", "agent4rec", "--simulator", "fitted", "--baselines", "popularity",
                 "--out", str(out)]) == 0
    text = out.with_suffix(".md").read_text()
    assert "## Like / dislike, 1:9" in text and "| fitted |" in text and out.with_suffix(".png").is_file()
    assert "--protocol agent4rec" in text  # the command that made it
    assert main(["eval-simulator", "--protocol", "agent4rec", "--simulator", "fitted", "--add-to", str(out)]) == 2
    assert "--add-to applies to the fidelity tables" in capsys.readouterr().err
