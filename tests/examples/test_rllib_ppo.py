"""examples/rllib_ppo.py: RLlib PPO (new API stack), 2 env runners, 2 iterations, in the RLlib virtualenv
(``make test-rllib``; skipped in ``make test``: ray[rllib] pins gymnasium 1.2.2, so it has its own virtualenv)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PYTHON = ROOT / ".venv-rllib" / "bin" / "python"
pytestmark = pytest.mark.skipif(not os.environ.get("RECSIM_TEST_RLLIB"), reason="needs the RLlib virtualenv: run `make test-rllib`")


def test_rllib_ppo_trains_two_iterations_with_two_env_runners():
    out = subprocess.run([str(PYTHON), str(ROOT / "examples" / "rllib_ppo.py"), "--iterations", "2", "--env-runners", "2"],
                         capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    steps = [float(s) for s in re.findall(r"iteration \d+: env steps ([\d.]+)", out.stdout)]
    returns = [float(s) for s in re.findall(r"episode return mean ([-\d.]+)", out.stdout)]
    assert steps == [256.0, 512.0] and len(returns) == 2 and all(r == r for r in returns), out.stdout
