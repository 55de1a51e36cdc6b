"""benchmarks/llm_gpu.py runs end to end (here on the CPU, tiny model, tiny budget), so it is ready for a lent GPU."""

import json

from benchmarks.llm_gpu import main


def test_gpu_benchmark_runs_on_cpu_with_random_weights(tiny_llm, tmp_path):
    out = tmp_path / "llm_gpu"
    rc = main(["--device", "cpu", "--dtype", "float32", "--model", tiny_llm, "--random-weights", "--batches", "2,4",
               "--generate-users", "1", "--env-envs", "2", "--env-steps", "1", "--out", str(out)])
    assert rc == 0
    data = json.loads(out.with_suffix(".json").read_text())
    assert set(data["scorer"]) == {"option scoring, 2 users per batch", "option scoring, 4 users per batch"}
    assert all(row["decisions_per_s"] > 0 for row in data["scorer"].values())
    assert data["generate"]["decisions"] == 10 and set(data["env"]) == {
        "page, context recomputed", "page, context kept", "feed, context recomputed", "feed, context kept"}
    assert not data["skipped"] and "Best scorer decisions/s" in out.with_suffix(".md").read_text()


def test_gpu_benchmark_skips_what_the_budget_cannot_hold(tiny_llm, tmp_path):
    out = tmp_path / "llm_gpu"
    main(["--device", "cpu", "--dtype", "float32", "--model", tiny_llm, "--random-weights", "--batches", "2",
          "--budget-s", "1", "--out", str(out)])
    data = json.loads(out.with_suffix(".json").read_text())
    assert data["scorer"] == {} and "scorer batch 2" in data["skipped"] and "env feed, context kept" in data["skipped"]
