"""Each example in examples/ runs as a user would run it, with a tiny budget (RLlib's has its own test and venv)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NUMBER = r"(-?\d+\.\d+)"


def run(script: str, *args: str) -> str:
    out = subprocess.run([sys.executable, str(ROOT / "examples" / script), *args], capture_output=True, text=True,
                         timeout=600, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


@pytest.mark.parametrize("mode", ["page", "feed"])
def test_custom_policy_example(mode):
    said = run("custom_policy.py", "--episodes", "3", "--feedback-mode", mode)
    rows = dict(re.findall(rf"^(random|taste match \(yours\))\s+return\s+{NUMBER}", said, re.M))
    assert set(rows) == {"random", "taste match (yours)"}, said


def test_sb3_ppo_example(tmp_path):
    said = run("sb3_ppo.py", "--timesteps", "512", "--episodes", "2", "--out", str(tmp_path))
    assert re.search(rf"^PPO\s+return\s+{NUMBER}", said, re.M) and re.search(rf"^random candidates\s+return\s+{NUMBER}", said, re.M), said
    assert (tmp_path / "model.zip").is_file() and (tmp_path / "card.json").is_file()


def test_recbole_backbone_example():
    said = run("recbole_backbone.py", "--model", "BPR", "--epochs", "1", "--episodes", "2")
    for name in ("random", "popularity", "RecBole BPR"):
        assert re.search(rf"^{name}\s+return\s+{NUMBER}", said, re.M), said


def test_minari_ope_example(tmp_path, monkeypatch):
    pytest.importorskip("minari")
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    said = run("minari_ope.py", "--episodes", "15")
    assert re.search(rf"^\s+IPS\s+{NUMBER}", said, re.M) and re.search(rf"^\s+true\s+{NUMBER}", said, re.M), said


def test_llm_user_example(tiny_llm):
    """The real code path (scenes, scoring, reasons in words) with a tiny random model: the shipped model's item states
    take minutes to compute on a cold cache."""
    said = run("llm_user.py", "--model", tiny_llm, "--users", "1", "--max-steps", "1", "--slate-size", "3")
    assert re.search(r"P\(skip\)=\d\.\d\d", said) and re.search(rf"^llm\s+mean return {NUMBER} over 1 users", said, re.M), said
