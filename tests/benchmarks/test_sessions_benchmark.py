"""benchmarks/sessions: the tables it writes hold the env rows, with KS distances that are real comparisons."""

import json

from benchmarks import sessions


def test_sessions_benchmark_writes_env_replay_and_policy_rows(tmp_path):
    out = tmp_path / "sessions"
    assert sessions.main(["--gaps", "3600", "--repeats", "1", "--episodes", "2", "--out", str(out)]) == 0
    res = json.loads(out.with_suffix(".json").read_text())
    env = res["env_replay"]["RecSimEnv-v1, log-replay policy"]
    real = res["env_replay"]["real, test sessions after >= 5 items"]
    assert env["sessions"] == real["sessions"] > 100 and 0 <= env["ks"] < 1
    assert set(res["policies"]) == {f"{v} / {m} / {p}" for v in ("RecSimEnv-v0", "RecSimEnv-v1")
                                    for m in ("feed", "page") for p in ("random", "popular")}
    fitted = res["leave_models"]["fitted (RecSimEnv-v1's)"]
    assert fitted["ks"] < res["leave_models"]["constant hazard (geometric)"]["ks"]
    assert "KS distance to real" in out.with_suffix(".md").read_text() and out.with_suffix(".png").stat().st_size > 0
