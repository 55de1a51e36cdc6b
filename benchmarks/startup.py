"""Start-up time of ``gym.make("RecSimEnv-v1")`` in a fresh process: cold (empty ``$RECSIM_CACHE``: the data-fitted
user model is fitted) vs warm (the fit is read from ``$RECSIM_CACHE/fitted``), measured in one run.

Each row is a new Python process (imports included), so it is what a script, a test or an async vector env worker
pays. Rounds interleave cold and warm starts (machines are shared and noisy); medians are reported.

Run: ``python -m benchmarks.startup`` (writes ``benchmarks/results/startup.{md,json}``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

__all__ = ["measure", "main"]

_PROBE = ("import time; t = time.perf_counter(); import gymnasium as gym, recsim_env; "
          "env = gym.make('RecSimEnv-v1'); env.reset(seed=0); print(time.perf_counter() - t)")


def _start(cache: str) -> float:
    """Seconds from interpreter start-up to the first reset, in a fresh process using ``cache``."""
    env = {**os.environ, "RECSIM_CACHE": cache}
    out = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def measure(rounds: int = 3) -> dict:
    """{"cold": [s, ...], "warm": [s, ...]}: each round one cold start (new empty cache) and one warm start."""
    times: dict[str, list[float]] = {"cold": [], "warm": []}
    for _ in range(rounds):
        with tempfile.TemporaryDirectory() as cache:
            times["cold"].append(_start(cache))
            times["warm"].append(_start(cache))
    return times


def main(argv: list[str] | None = None) -> int:
    import numpy as np

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--out", default="benchmarks/results/startup")
    args = p.parse_args(argv)
    times = measure(args.rounds)
    med = {k: float(np.median(v)) for k, v in times.items()}
    host = f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"
    md = ["# gym.make('RecSimEnv-v1') start-up, fresh process (imports + make + first reset)", "",
          f"Command: `python -m benchmarks.startup --rounds {args.rounds}`; {host}; medians of {args.rounds} interleaved rounds.", "",
          "| start | median s | all runs s |", "| --- | --- | --- |"]
    md += [f"| {k} | {med[k]:.2f} | {', '.join(f'{t:.2f}' for t in v)} |" for k, v in times.items()]
    md += ["", f"Warm / cold: {med['warm'] / med['cold']:.3f} (cold fits the data-fitted user model; warm reads it from "
           f"`$RECSIM_CACHE/fitted`, keyed by dataset content, config and fitting code)."]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out + ".md").write_text("\n".join(md) + "\n")
    Path(args.out + ".json").write_text(json.dumps({"seconds": times, "median": med, "host": host}, indent=1) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
