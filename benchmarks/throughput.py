"""Environment throughput: env-steps/s of one RecSimEnv and of the vector env at several N.

All rows are measured in ONE run, interleaved in rounds (machines are shared and noisy), so the
ratios are meaningful even when absolute numbers drift. Actions are random catalogue slates of 10,
the simulator is the data-fitted model, feedback mode "feed", ml-100k. Episodes end and autoreset
as in normal use.

Run: ``python -m benchmarks.throughput`` (writes ``benchmarks/results/throughput.{md,json,png}``).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
from tqdm.auto import tqdm

import recsim_env  # noqa: F401

__all__ = ["measure_single", "measure_vector"]


def measure_single(env: gym.Env, seconds: float, rng: np.random.Generator) -> float:
    """env-steps/s of a single env with random slates for about ``seconds``."""
    high = env.action_space.nvec
    actions = rng.integers(0, high, size=(256, len(high)))
    env.reset(seed=0)
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for a in actions:
            _, _, term, trunc, _ = env.step(a)
            if term or trunc:
                env.reset()
        steps += len(actions)
    return steps / (time.perf_counter() - start)


def measure_vector(envs: gym.vector.VectorEnv, seconds: float, rng: np.random.Generator) -> float:
    """env-steps/s (sub-env steps, autoreset steps included) of a vector env."""
    high = envs.single_action_space.nvec
    actions = rng.integers(0, high, size=(16, envs.num_envs, len(high)))
    envs.reset(seed=0)
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for a in actions:
            envs.step(a)
        steps += len(actions) * envs.num_envs
    return steps / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1,16,64,256", help="vector env sizes")
    parser.add_argument("--seconds", type=float, default=2.0, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the median is reported")
    parser.add_argument("--feedback-mode", default="feed", choices=["page", "feed"])
    parser.add_argument("--out", default="benchmarks/results/throughput")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    kw = dict(feedback_mode=args.feedback_mode, slate_size=10)
    single = gym.make("RecSimEnv-v0", **kw)
    vecs = {n: gym.make_vec("RecSimEnv-v0", num_envs=n, vectorization_mode="vector_entry_point", **kw) for n in sizes}
    rng = np.random.default_rng(0)
    samples: dict[str, list[float]] = {"single": []} | {f"vector N={n}": [] for n in sizes}
    for _ in tqdm(range(args.rounds), desc="rounds"):
        samples["single"].append(measure_single(single, args.seconds, rng))
        for n, envs in vecs.items():
            samples[f"vector N={n}"].append(measure_vector(envs, args.seconds, rng))
    med = {k: float(np.median(v)) for k, v in samples.items()}
    base = med["single"]
    cmd = f"python -m benchmarks.throughput --sizes {args.sizes} --seconds {args.seconds} --rounds {args.rounds} --feedback-mode {args.feedback_mode}"
    lines = [
        "# RecSimEnv-v0 throughput (ml-100k, data-fitted simulator, slate 10, feedback_mode=" + args.feedback_mode + ")",
        "", f"Command: `{cmd}`", "",
        f"Machine: {platform.processor() or platform.machine()}, {__import__('os').cpu_count()} cores. "
        f"Median of {args.rounds} interleaved rounds of {args.seconds:.0f} s.", "",
        "| env | env-steps/s | x single env |", "| --- | ---: | ---: |",
    ]
    lines += [f"| {k} | {v:,.0f} | {v / base:.1f} |" for k, v in med.items()]
    target_n = max(sizes)
    lines += [
        "", f"Targets (issue 2): vectorized >= 20,000 env-steps/s -> {med[f'vector N={target_n}']:,.0f} "
        f"({'met' if med[f'vector N={target_n}'] >= 20000 else 'NOT met'}); >= 10x single env -> "
        f"{med[f'vector N={target_n}'] / base:.1f}x ({'met' if med[f'vector N={target_n}'] >= 10 * base else 'NOT met'}).",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text(text)
    out.with_suffix(".json").write_text(json.dumps({"command": cmd, "samples": samples, "median": med}, indent=2))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(sizes, [med[f"vector N={n}"] for n in sizes], "o-", label="RecSimVectorEnv (one simulator call / step)")
    ax.axhline(base, color="gray", ls="--", label="single RecSimEnv")
    ax.axhline(20000, color="red", ls=":", label="target 20,000")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("num_envs")
    ax.set_ylabel("env-steps / s")
    ax.set_title("RecSimEnv-v0 throughput, ml-100k, fitted simulator")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out.with_suffix(".png"), dpi=120)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
