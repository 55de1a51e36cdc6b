"""benchmarks/ope end to end on a tiny budget: the logger's own IPS equals its logged mean (weights 1)."""

import json
import warnings

import pytest

pytest.importorskip("minari")


def test_ope_benchmark_runs_through_minari(tmp_path):
    from benchmarks import ope

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert ope.main(["--episodes", "20", "--data-format", "arrow", "--out", str(tmp_path / "ope")]) == 0
    rows = json.loads((tmp_path / "ope.json").read_text())["rows"]
    logger = rows[next(iter(rows))]["estimate"]
    assert logger["ips_first"] == pytest.approx(logger["naive_first"]) and logger["ess_first"] == pytest.approx(20)
    assert len(rows) == 4 and all(r["estimate"]["episodes"] == 20 for r in rows.values())
    assert (tmp_path / "ope.png").stat().st_size > 0
