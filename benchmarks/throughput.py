"""Environment throughput: env-steps/s of one RecSimEnv and of the vector env at several N.

All rows are measured in ONE run, interleaved in rounds (machines are shared and noisy), so the
ratios are meaningful even when absolute numbers drift. Actions are random catalogue slates of 10,
the simulator is the data-fitted model, feedback mode "feed", ml-100k. Episodes end and autoreset
as in normal use.

Run: ``python -m benchmarks.throughput`` (writes ``benchmarks/results/throughput.{md,json,png}``).

With ``--simulator llm`` it measures the LLM user simulator instead (default model, bf16, CPU),
writing ``benchmarks/results/throughput_llm.{md,json,png}``:

* decisions/s of the batched option scorer at batch 1, 8, 32, 64. A decision is one page-mode
  answer for one user: a choice among 10 items + "none", then the clicked item's rating;
* the same decisions made the way SUBER and Agent4Rec make them: one ``generate`` call per
  decision with the same prompt and model, free-text answer parsed (parse failures counted);
* achieved model FLOP/s, ``2 x parameters x forward tokens / s``, against this machine's bf16
  matmul FLOP/s measured in the same run (2048 x 2048 matmuls);
* env-steps/s of ``gym.make_vec(..., num_envs=64, simulator="llm")`` in page and feed mode.
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


def matmul_flops(seconds: float = 2.0, n: int = 2048) -> float:
    """bf16 matmul FLOP/s of this machine (torch, n x n)."""
    import torch

    a, b = torch.randn(n, n, dtype=torch.bfloat16), torch.randn(n, n, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    reps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        reps += 1
    return 2 * n**3 * reps / (time.perf_counter() - start)


def page_requests(dataset, n: int, slate: int = 10, seed: int = 0) -> list:
    """``n`` distinct test-user page requests (memory = real history up to a random cut)."""
    from simulators.base import SimulationRequest

    rng = np.random.default_rng(seed)
    users = dataset.users("test")
    out = []
    for i in range(n):
        u = int(users[i % len(users)])
        h = dataset.history(u)
        cut = int(rng.integers(5, h.stop - h.start + 1))
        idx = np.arange(h.start, h.start + cut)[-30:]
        ratio = dataset.inter_watch_ratio[idx]
        out.append(SimulationRequest(
            user=u, history_items=dataset.inter_item[idx], history_watch_ratio=ratio, history_skipped=ratio < 0.3,
            slate=rng.choice(dataset.n_items, slate, replace=False), repeated=np.zeros(slate, bool), mode="page",
            history_time=dataset.inter_time[idx],
        ))
    return out


def generate_and_parse(sim, requests: list) -> tuple[float, int, int]:
    """SUBER/Agent4Rec style: one generate call per decision, letter and rating parsed from text.

    Returns (seconds, forward tokens, parse failures)."""
    import re

    scenes = sim.scenes
    tokens, failures, start = 0, 0, time.perf_counter()
    for r in requests:
        page, n = scenes.page_question(r)
        question = page.split(scenes.chat.assistant_open)[0] + " Then give your rating from 1 to 5, e.g. '[C] 4'."
        prompt = scenes.system() + scenes.context(r) + scenes.chat.ask(question, "")
        text = sim.generate([prompt], max_new_tokens=16)[0]
        tokens += len(sim.tokenizer(prompt, add_special_tokens=False)["input_ids"]) + 16
        m = re.search(r"\[?([A-Z])\]?\D*([1-5])?", text)
        if not m or ord(m.group(1)) - 65 >= n or m.group(2) is None:
            failures += 1
    return time.perf_counter() - start, tokens, failures


def llm_main(args: argparse.Namespace) -> int:
    from recsim_env.data import load_dataset
    from simulators.llm import LLMUserSimulator

    ds = load_dataset("ml-100k")
    params = None
    rows: dict[str, dict] = {}
    peak = matmul_flops()
    for batch in (1, 8, 32, 64):
        sim = LLMUserSimulator(dataset=ds, batch_size=batch, cache_size=0)
        params = params or sum(p.numel() for p in sim.model.parameters())
        reqs = page_requests(ds, max(batch, 16) if batch < 64 else 64, seed=batch)
        sim.respond(reqs[:batch], [np.random.default_rng(0)] * batch)  # warm-up
        t0, tok0 = time.perf_counter(), sim.scorer.tokens_forwarded
        sim.respond(reqs, [np.random.default_rng(i) for i in range(len(reqs))])
        dt, toks = time.perf_counter() - t0, sim.scorer.tokens_forwarded - tok0
        rows[f"scorer batch {batch}"] = {"decisions_per_s": len(reqs) / dt, "tokens_per_s": toks / dt, "flops": 2 * params * toks / dt}
    sim = LLMUserSimulator(dataset=ds, batch_size=1, cache_size=0)
    reqs = page_requests(ds, args.generate_decisions, seed=99)
    sim.generate(["warm up"], 2)
    dt, toks, fails = generate_and_parse(sim, reqs)
    rows["generate + parse (SUBER/Agent4Rec)"] = {
        "decisions_per_s": len(reqs) / dt, "tokens_per_s": toks / dt, "flops": 2 * params * toks / dt,
        "parse_failures": fails, "decisions": len(reqs),
    }
    env_rows = {}
    for mode in ("page", "feed"):
        envs = gym.make_vec("RecSimEnv-v0", num_envs=64, vectorization_mode="vector_entry_point", simulator="llm",
                            simulator_kwargs={"batch_size": 64}, feedback_mode=mode, user_split="test")
        envs.reset(seed=0)
        rng = np.random.default_rng(0)
        t0 = time.perf_counter()
        for _ in range(args.env_steps):
            envs.step(rng.integers(0, envs.single_action_space.nvec, size=(64, 10)))
        env_rows[mode] = 64 * args.env_steps / (time.perf_counter() - t0)
    best = max((r for k, r in rows.items() if k.startswith("scorer")), key=lambda r: r["decisions_per_s"])
    gen = rows["generate + parse (SUBER/Agent4Rec)"]
    cmd = f"python -m benchmarks.throughput --simulator llm --generate-decisions {args.generate_decisions} --env-steps {args.env_steps}"
    lines = [
        "# LLM user simulator throughput (SmolLM2-135M-Instruct, bf16, CPU, ml-100k, slate of 10)", "",
        f"Command: `{cmd}`", "",
        f"Machine: {platform.machine()}, {__import__('os').cpu_count()} cores; bf16 matmul peak measured in this run: "
        f"{peak / 1e9:,.0f} GFLOP/s. Model parameters: {params / 1e6:.1f} M.", "",
        "| method | decisions/s | forward tokens/s | model GFLOP/s (2 x params x tokens/s) | % of matmul peak |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, r in rows.items():
        extra = f" ({r['parse_failures']}/{r['decisions']} answers unparsable)" if "parse_failures" in r else ""
        lines.append(f"| {name}{extra} | {r['decisions_per_s']:.2f} | {r['tokens_per_s']:,.0f} | {r['flops'] / 1e9:,.0f} | {100 * r['flops'] / peak:.0f}% |")
    lines += [
        "", "| env (num_envs=64, LLM simulator) | env-steps/s |", "| --- | ---: |",
        *[f"| feedback_mode={m} | {v:.2f} |" for m, v in env_rows.items()], "",
        f"Targets (issue 3): batched >= 20x generate-per-decision -> {best['decisions_per_s'] / gen['decisions_per_s']:.1f}x "
        f"({'met' if best['decisions_per_s'] >= 20 * gen['decisions_per_s'] else 'NOT met'}); model FLOP/s >= 50% of matmul peak -> "
        f"{100 * best['flops'] / peak:.0f}% ({'met' if best['flops'] >= 0.5 * peak else 'NOT met'}).",
        "", "Forward tokens count every token the model runs (system prompt once, contexts once per user batch, "
        "questions per scoring call); the generate baseline counts prompt + 16 new tokens per decision.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    out = Path(args.out + "_llm")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text(text)
    out.with_suffix(".json").write_text(json.dumps({"command": cmd, "peak_flops": peak, "rows": rows, "env_steps_per_s": env_rows}, indent=2))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    names = list(rows)
    ax.barh(names, [rows[n]["decisions_per_s"] for n in names], color=["C0"] * 4 + ["C3"])
    ax.set_xscale("log")
    ax.set_xlabel("decisions / s (log)")
    ax.set_title("LLM simulator: batched option scoring vs generate + parse")
    fig.tight_layout()
    fig.savefig(out.with_suffix(".png"), dpi=120)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--simulator", default="fitted", choices=["fitted", "llm"])
    parser.add_argument("--generate-decisions", type=int, default=16, help="llm: decisions made by generate + parse")
    parser.add_argument("--env-steps", type=int, default=2, help="llm: vector steps timed per feedback mode")
    parser.add_argument("--sizes", default="1,16,64,256", help="vector env sizes")
    parser.add_argument("--seconds", type=float, default=2.0, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the median is reported")
    parser.add_argument("--feedback-mode", default="feed", choices=["page", "feed"])
    parser.add_argument("--out", default="benchmarks/results/throughput")
    args = parser.parse_args(argv)
    if args.simulator == "llm":
        return llm_main(args)
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
