"""Environment throughput: env-steps per CPU-second of RecSimEnv, its vector env, and two peer simulators.

Every row is measured in ONE run, interleaved in rounds (machines are shared and noisy), so ratios are meaningful even
when absolute numbers drift; time is CPU time of the measuring process (``time.process_time``), so a busy machine slows
the rows less than wall-clock would. Actions are random catalogue slates of 10, the simulator is the data-fitted model,
ml-100k, ``RecSimEnv-v1``; episodes end and reset as in normal use. The vector env counts real transitions only: with
Gymnasium's default autoreset (``NEXT_STEP``) the step after a sub-env ends only resets it (no transition), and those
rows are not counted; ``SAME_STEP`` rows reset within the step. The per-step profile (cProfile, top functions by own
time) of the single env and of the largest vector env is written beside the table.

Peers (``--peers``, default on): RecSim 0.2.4 (interest_evolution, random slates) and RecoGym 0.1.3.0 (reco-gym-v1,
1,682 products, random recommendations), each in its own virtualenv made on first use by ``benchmarks/peers``.

Run: ``python -m benchmarks.throughput`` (writes ``benchmarks/results/throughput.{md,json,png}``).

With ``--simulator llm`` it measures the LLM user simulator instead (default model, bf16, CPU),
writing ``benchmarks/results/throughput_llm.{md,json,png}``:

* decisions/s of the batched option scorer at batch 1, 8, 32, 64 (users per batch). A decision
  is one user's reaction to one item of a 10-item feed: watch or skip, then the reason (skip) or
  the rating (watch);
* the same decisions made the way SUBER and Agent4Rec make them: one ``generate`` call per
  decision (16 new tokens, greedy) with the same memory, item and model, free-text answer parsed
  (parse failures counted);
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

import recsim_env

ENV = recsim_env.ENV_ID
WARM_UP = 0.5  # CPU-seconds of the same work before each timed row (peers' scripts too)

__all__ = ["measure_single", "measure_vector", "step_profile"]


def measure_single(env: gym.Env, seconds: float, rng: np.random.Generator) -> float:
    """Env-steps per CPU-second of a single env with random slates, resets included, for about ``seconds``."""
    high = env.action_space.nvec
    actions = rng.integers(0, high, size=(256, len(high)))
    env.reset(seed=int(rng.integers(2**31)))
    start = time.process_time()
    while time.process_time() - start < WARM_UP:  # untimed: after a wait this VM's vCPU runs slow for a while
        for a in actions[:50]:
            if any(env.step(a)[2:4]):
                env.reset()
    steps, start = 0, time.process_time()
    while time.process_time() - start < seconds:
        for a in actions:
            _, _, term, trunc, _ = env.step(a)
            if term or trunc:
                env.reset()
        steps += len(actions)
    return steps / (time.process_time() - start)


def measure_vector(envs: gym.vector.VectorEnv, seconds: float, rng: np.random.Generator) -> dict[str, float]:
    """Real transitions (sub-envs that stepped, not autoreset-only rows) per CPU-second of a vector env, and the share
    of sub-env steps that were autoreset no-ops."""
    high = envs.single_action_space.nvec
    actions = rng.integers(0, high, size=(16, envs.num_envs, len(high)))
    envs.reset(seed=int(rng.integers(2**31)))
    start = time.process_time()
    while time.process_time() - start < WARM_UP:  # untimed, as in measure_single
        envs.step(actions[0])
    real = calls = 0
    start = time.process_time()
    while time.process_time() - start < seconds:
        for a in actions:
            _, _, _, _, info = envs.step(a)
            real += int(info["_feedback"].sum())
            calls += 1
    cpu = time.process_time() - start
    return {"transitions_per_cpu_s": real / cpu, "noop_share": 1.0 - real / (calls * envs.num_envs)}


def step_profile(step, n_calls: int, top: int = 12) -> list[dict]:
    """cProfile of ``n_calls`` calls of ``step()``: the ``top`` functions by own time, with their share of the total."""
    import cProfile
    import pstats

    prof = cProfile.Profile()
    prof.enable()
    for _ in range(n_calls):
        step()
    prof.disable()
    stats = pstats.Stats(prof).stats
    total = sum(v[2] for v in stats.values())
    rows = sorted(stats.items(), key=lambda kv: -kv[1][2])[:top]
    root = str(Path(__file__).resolve().parent.parent)
    return [{"function": f"{Path(f).as_posix().replace(root + '/', '')}:{line}({name})" if f != "~" else name,
             "own_share": v[2] / total, "own_us_per_call": 1e6 * v[2] / n_calls, "calls_per_step": v[1] / n_calls}
            for (f, line, name), v in rows]


def cpu_model() -> str:
    """The CPU's model name (bf16 matmul speed differs several-fold between CPUs with and without AMX)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _sync(device: str) -> None:
    import torch

    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def matmul_flops(seconds: float = 2.0, n: int = 2048, device: str = "cpu") -> float:
    """bf16 matmul FLOP/s of this machine (torch, n x n) on ``device``."""
    import torch

    if str(device).startswith("cuda"):
        n = max(n, 8192)  # a 2048 matmul does not fill a GPU
    a, b = (torch.randn(n, n, dtype=torch.bfloat16, device=device) for _ in range(2))
    for _ in range(3):
        a @ b
    _sync(device)
    reps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        _sync(device)
        reps += 1
    return 2 * n**3 * reps / (time.perf_counter() - start)


def scene_requests(dataset, n: int, mode: str = "feed", slate: int = 10, seed: int = 0) -> list:
    """``n`` distinct test-user requests (memory = real history up to a random cut)."""
    from simulators.base import SimulationRequest

    rng = np.random.default_rng(seed)
    users = dataset.users("test")
    out = []
    for i in range(n):
        u = int(users[i % len(users)])
        h = dataset.history(u)
        cut = int(rng.integers(5, h.stop - h.start + 1))
        out.append(SimulationRequest.from_history(dataset, u, cut, rng.choice(dataset.n_items, slate, replace=False), mode))
    return out


def generate_and_parse(sim, requests: list) -> tuple[float, int, int, int]:
    """SUBER/Agent4Rec style: one generate call per (user, item) decision, answer parsed from text.

    Returns (seconds, forward tokens, decisions, parse failures)."""
    import re

    scenes = sim.scenes
    tokens = failures = decisions = 0
    start = time.perf_counter()
    for r in requests:
        for item in r.slate:
            question = (
                f"Now playing in your feed: {scenes.item_texts[int(item)]}. Do you watch it or skip it? "
                f"Answer 'skip' with the reason (content-driven, algorithm-driven or user-driven), "
                f"or 'watch' with your rating from 1 to 5."
            )
            prompt = scenes.system() + scenes.context(r) + scenes.chat.ask(question, "")
            text = sim.generate([prompt], max_new_tokens=16)[0].lower()
            tokens += len(sim.tokenizer(prompt, add_special_tokens=False)["input_ids"]) + 16
            decisions += 1
            skip = re.search(r"skip.*?(content|algorithm|user)", text, re.S)
            watch = re.search(r"watch\D*([1-5])", text)
            failures += not (skip or watch)
    return time.perf_counter() - start, tokens, decisions, failures


def plot_llm(json_path: Path, png_path: Path) -> None:
    """Bar chart of decisions/s (median of rounds) from the LLM benchmark's JSON."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = json.loads(Path(json_path).read_text())["medians"]
    names = [n for n in rows if not n.startswith("ceiling")]
    fig, ax = plt.subplots(figsize=(8, 3.4))
    bars = ax.barh(names, [rows[n]["decisions_per_s"] for n in names],
                   color=["C3" if n.startswith("generate") else "C0" for n in names])
    ax.bar_label(bars, fmt="%.1f", padding=3)
    ax.set_xlabel("decisions / s (median of interleaved rounds)")
    ax.set_title("LLM simulator on a 2-core CPU")
    ax.margins(x=0.12)
    fig.tight_layout()
    fig.savefig(png_path, dpi=120)
    plt.close(fig)


CEILING = "ceiling: plain causal forward, 8 x 400 tokens, no tree or cache"


def plain_forward(model, batch: int = 8, length: int = 400, reps: int = 3) -> dict:
    """Tokens/s of the bare model on full causal sequences: what any scorer on this model could reach."""
    import torch

    device = str(next(model.parameters()).device)
    ids = torch.randint(100, 10000, (batch, length), device=device)
    with torch.inference_mode():
        model(input_ids=ids, logits_to_keep=1)
        _sync(device)
        start = time.perf_counter()
        for _ in range(reps):
            model(input_ids=ids, logits_to_keep=1)
        _sync(device)
    dt = (time.perf_counter() - start) / reps
    return {"decisions_per_s": float("nan"), "tokens_per_s": batch * length / dt, "decisions": 0}


def llm_main(args: argparse.Namespace) -> int:
    from recsim_env.data import load_dataset
    from simulators.llm import LLMUserSimulator

    ds = load_dataset("ml-100k")
    sim = LLMUserSimulator(dataset=ds, cache_size=0, compile=args.compile, device=args.device)
    params = sum(p.numel() for p in sim.model.parameters())
    base_config = sim.config
    gen_name = "generate + parse, 1 per decision (SUBER/Agent4Rec)"  # rows print in insertion order
    samples: dict[str, list[dict]] = {}
    peaks: list[float] = []
    sim.generate(["warm up"], 2)
    sim.respond(scene_requests(ds, 2, seed=0), [np.random.default_rng(0)] * 2)
    for rnd in tqdm(range(args.rounds), desc="rounds"):
        round_peak = [matmul_flops(1.0, device=args.device)]
        for batch in (1, 8, 32, 64):
            sim.config = type(base_config)(**{**base_config.__dict__, "batch_size": batch})
            reqs = scene_requests(ds, max(batch, 8), seed=100 * rnd + batch)
            t0, tok0 = time.perf_counter(), sim.scorer.tokens_forwarded
            sim.respond(reqs, [np.random.default_rng(i) for i in range(len(reqs))])
            dt, toks = time.perf_counter() - t0, sim.scorer.tokens_forwarded - tok0
            n = sum(len(r.slate) for r in reqs)
            samples.setdefault(f"option scoring, {batch} user(s) per batch", []).append(
                {"decisions_per_s": n / dt, "tokens_per_s": toks / dt, "decisions": n})
        samples.setdefault(CEILING, []).append(plain_forward(sim.model))
        dt, toks, n, fails = generate_and_parse(sim, scene_requests(ds, args.generate_users, seed=1000 + rnd))
        samples.setdefault(gen_name, []).append(
            {"decisions_per_s": n / dt, "tokens_per_s": toks / dt, "parse_failures": fails, "decisions": n})
        round_peak.append(matmul_flops(1.0, device=args.device))
        peaks.append(max(round_peak))
    sim.config = base_config
    del sim
    # per round: FLOP share against that round's matmul peak, and best scorer / generate
    for name, runs in samples.items():
        for run, peak in zip(runs, peaks):
            run["flops"] = 2 * params * run["tokens_per_s"]
            run["share_of_peak"] = run["flops"] / peak
    scorer_names = [k for k in samples if k.startswith("option scoring")]
    speedups = [max(samples[k][r]["decisions_per_s"] for k in scorer_names) / samples[gen_name][r]["decisions_per_s"] for r in range(args.rounds)]
    best_share = [max(samples[k][r]["share_of_peak"] for k in scorer_names) for r in range(args.rounds)]
    med = lambda xs: float(np.median(xs))
    rows = {k: {key: med([run[key] for run in runs]) for key in ("decisions_per_s", "tokens_per_s", "flops", "share_of_peak")} for k, runs in samples.items()}
    fails = sum(run["parse_failures"] for run in samples[gen_name])
    total = sum(run["decisions"] for run in samples[gen_name])

    env_rows = {}
    for mode in ("page", "feed"):
        envs = gym.make_vec("RecSimEnv-v1", num_envs=64, vectorization_mode="vector_entry_point", simulator="llm",
                            simulator_kwargs={"compile": args.compile, "device": args.device, "adapter": None}, feedback_mode=mode, user_split="test")
        envs.reset(seed=0)
        rng = np.random.default_rng(0)
        t0 = time.perf_counter()
        for _ in range(args.env_steps):
            envs.step(rng.integers(0, envs.single_action_space.nvec, size=(64, 10)))
        env_rows[mode] = 64 * args.env_steps / (time.perf_counter() - t0)
        envs.close()

    cmd = (f"python -m benchmarks.throughput --simulator llm --rounds {args.rounds} "
           f"--generate-users {args.generate_users} --env-steps {args.env_steps}" + (" --compile" if args.compile else "")
           + (f" --device {args.device}" if args.device != "cpu" else ""))
    accelerator = ""
    if args.device.startswith("cuda"):
        import torch

        accelerator = f"; model on {torch.cuda.get_device_name(torch.device(args.device))}"
    lines = [
        f"# LLM user simulator throughput (SmolLM2-135M-Instruct, bf16, {args.device.upper()}, ml-100k, feed of 10 items)", "",
        f"Model {'with' if args.compile else 'without'} torch.compile of its MLP and norms (the same model object "
        f"serves the scorer and the generate baseline).", "",
        f"Command: `{cmd}`", "",
        f"Machine: {cpu_model()} ({platform.machine()}), {__import__('os').cpu_count()} cores{accelerator} (a shared VM: absolute speed drifts by up to 2x "
        f"between minutes, so every row is measured in each of {args.rounds} interleaved rounds and ratios are taken "
        f"within a round). bf16 matmul peak per round (torch n x n, n = 2048 on a CPU, 8192 on a GPU; max of round start/end): "
        f"{', '.join(f'{p / 1e9:,.0f}' for p in peaks)} GFLOP/s. Model parameters: {params / 1e6:.1f} M.", "",
        "A decision = one user's reaction to one item: watch or skip, then the reason (skip) or the rating (watch).",
        "Medians over rounds:", "",
        "| method | decisions/s | forward tokens/s | model GFLOP/s (2 x params x tokens/s) | share of that round's matmul peak |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, r in rows.items():
        extra = f" ({fails}/{total} answers unparsable)" if name == gen_name else ""
        dps = "-" if name == CEILING else f"{r['decisions_per_s']:.2f}"
        lines.append(f"| {name}{extra} | {dps} | {r['tokens_per_s']:,.0f} | {r['flops'] / 1e9:,.0f} | {100 * r['share_of_peak']:.0f}% |")
    lines += [
        "", "| env (num_envs=64, LLM simulator, slate of 10) | env-steps/s |", "| --- | ---: |",
        *[f"| feedback_mode={m} | {v:.2f} |" for m, v in env_rows.items()], "",
        f"Per-round speed-up of the best batched scorer over generate + parse: {', '.join(f'{x:.1f}x' for x in speedups)}; "
        f"per-round best share of matmul peak: {', '.join(f'{100 * x:.0f}%' for x in best_share)}.", "",
        f"Targets (issue 3): batched >= 20x generate-per-decision -> median {med(speedups):.1f}x "
        f"({'met' if med(speedups) >= 20 else 'NOT met'}); model FLOP/s >= 50% of matmul peak -> median "
        f"{100 * med(best_share):.0f}% ({'met' if med(best_share) >= 0.5 else 'NOT met'}).",
        "", "Forward tokens count every position the model runs, pads included (system prompt once per simulator, each "
        "context once per batch, each item question and follow-up once); the generate baseline counts prompt + 16 new "
        "tokens per decision. FLOPs use all 134.5 M parameters per token, as the issue defines them. 8 to 32 users per batch "
        "perform alike within this machine's noise; 64 is slower (masked attention over longer padded batches). The "
        "simulator's default batch_size is 8.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    out = Path(args.out + "_llm")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text(text)
    out.with_suffix(".json").write_text(json.dumps(
        {"command": cmd, "peak_flops": peaks, "samples": samples, "medians": rows, "speedups": speedups,
         "env_steps_per_s": env_rows}, indent=2))
    plot_llm(out.with_suffix(".json"), out.with_suffix(".png"))
    return 0


def llm_env_main(args) -> int:
    """env-steps/s of 64 LLM envs, the default (decision heads) against the letters-scoring S-GRPO adapter, in one run."""
    import torch

    variants = {
        "decision heads (default)": {},
        "answer letters, S-GRPO adapter": {"adapter": "smollm2-135m-ml100k-sgrpo"},
    }
    dtype = args.llm_dtype
    n = args.num_envs
    samples: dict[str, dict[str, list[float]]] = {k: {"page": [], "feed": []} for k in variants}
    envs = {}
    for name, kw in variants.items():
        for mode in ("page", "feed"):
            envs[name, mode] = gym.make_vec("RecSimEnv-v1", num_envs=n, vectorization_mode="vector_entry_point", simulator="llm",
                                            simulator_kwargs={**kw, "dtype": dtype}, feedback_mode=mode, user_split="test")
            envs[name, mode].reset(seed=0)
    steps = {"decision heads (default)": args.env_steps * 10, "answer letters, S-GRPO adapter": args.env_steps}
    rng = np.random.default_rng(0)
    for mode in ("page", "feed"):  # one untimed step: the heads' one-time work (item states, fitted cues) is not a step
        e = envs["decision heads (default)", mode]
        e.step(rng.integers(0, e.single_action_space.nvec, size=(n, 10)))
    for _ in tqdm(range(args.rounds), desc="rounds"):
        for (name, mode), e in envs.items():
            t0 = time.perf_counter()
            for _ in range(steps[name]):
                e.step(rng.integers(0, e.single_action_space.nvec, size=(n, 10)))
            samples[name][mode].append(n * steps[name] / (time.perf_counter() - t0))
    med = {k: {m: float(np.median(v)) for m, v in d.items()} for k, d in samples.items()}
    base = med["answer letters, S-GRPO adapter"]
    cmd = (f"python -m benchmarks.throughput --simulator llm-env --num-envs {n} --env-steps {args.env_steps} "
           f"--rounds {args.rounds} --llm-dtype {dtype}")
    lines = [f"# LLM user simulator in the env: env-steps/s at {n} envs (ml-100k, slate 10, test users)", "",
             f"Command: `{cmd}`", "",
             f"Machine: {cpu_model()}, {torch.get_num_threads()} threads, model dtype {dtype}. Median of {args.rounds} round(s); "
             f"the heads ran {steps['decision heads (default)']} vector steps per mode and round, the letters "
             f"{steps['answer letters, S-GRPO adapter']} (each of their steps forwards every user's context and items).", "",
             "| simulator | page env-steps/s | feed env-steps/s | x letters (page / feed) |", "| --- | ---: | ---: | ---: |"]
    lines += [f"| {k} | {v['page']:,.2f} | {v['feed']:,.2f} | {v['page'] / base['page']:.1f} / {v['feed'] / base['feed']:.1f} |"
              for k, v in med.items()]
    lines += ["", "The heads read item states computed once per catalogue (cached) and the collaborative cues; their one-time "
              "set-up (item states, fitting the cue model) runs in one untimed step per mode. No forward pass runs per step "
              "unless reasons in words are asked for (`explain`). The letters' steps are timed from the first (their "
              "per-step cost, every user's context and items forwarded, dwarfs any set-up)."]
    text = "\n".join(lines) + "\n"
    print(text)
    out = Path(args.out if args.out != "benchmarks/results/throughput" else "benchmarks/results/throughput_llm_env")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text(text)
    out.with_suffix(".json").write_text(json.dumps({"command": cmd, "samples": samples, "median": med}, indent=2))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    x = np.arange(2)
    for j, (k, v) in enumerate(med.items()):
        ax.bar(x + 0.4 * j, [v["page"], v["feed"]], 0.4, label=k)
    ax.set_xticks(x + 0.2, ["page", "feed"])
    ax.set_yscale("log")
    ax.set_ylabel("env-steps / s (log)")
    ax.set_title(f"LLM user in the env, {n} envs, {dtype}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out.with_suffix(".png"), dpi=120)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--simulator", default="fitted", choices=["fitted", "llm", "llm-env"],
                        help="llm-env: only env-steps/s of the LLM simulator, decision heads vs answer letters")
    parser.add_argument("--num-envs", type=int, default=64, help="llm-env: sub-envs of the vector env")
    parser.add_argument("--llm-dtype", default="float32", help="llm-env: model dtype (bf16 is emulated on CPUs without avx512_bf16)")
    parser.add_argument("--generate-users", type=int, default=2, help="llm: users x 10 items decided by generate + parse")
    parser.add_argument("--env-steps", type=int, default=2, help="llm: vector steps timed per feedback mode")
    parser.add_argument("--compile", action="store_true", help="llm: torch.compile the model's MLP and norms")
    parser.add_argument("--device", default="cpu", help="llm: torch device of the model and the matmul peak (cpu, cuda)")
    parser.add_argument("--sizes", default="1,16,256", help="vector env sizes")
    parser.add_argument("--seconds", type=float, default=2.0, help="CPU-seconds per measurement")
    parser.add_argument("--no-peers", dest="peers", action="store_false", help="skip RecSim and RecoGym (no venvs made)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the median is reported")
    parser.add_argument("--feedback-mode", default="feed", choices=["page", "feed"])
    parser.add_argument("--out", default="benchmarks/results/throughput")
    args = parser.parse_args(argv)
    if args.simulator == "llm":
        return llm_main(args)
    if args.simulator == "llm-env":
        return llm_env_main(args)
    return fitted_main(args)


def _stepper(env, rng: np.random.Generator, vector: bool):
    """A no-argument function doing one random step of ``env`` (resetting a single env whose episode ended)."""
    high = env.single_action_space.nvec if vector else env.action_space.nvec
    shape = (env.num_envs, len(high)) if vector else (len(high),)

    def step() -> None:
        out = env.step(rng.integers(0, high, size=shape))
        if not vector and (out[2] or out[3]):
            env.reset()

    return step


def fitted_main(args: argparse.Namespace) -> int:
    """The fitted env's table: single, vector (both autoreset modes) and the peers, interleaved in rounds."""
    from benchmarks import peers

    sizes = [int(s) for s in args.sizes.split(",")]
    kw = dict(feedback_mode=args.feedback_mode, slate_size=10)
    single = gym.make(ENV, **kw)
    vecs = {(n, mode): gym.make_vec(ENV, num_envs=n, vectorization_mode="vector_entry_point", autoreset_mode=mode, **kw)
            for n in sizes for mode in ("next_step", "same_step")}
    peer_rows = {"RecSim 0.2.4 interest_evolution (10 candidates, slate 2)": ("recsim", {}),
                 "RecSim 0.2.4 interest_evolution (20 candidates, slate 10)": ("recsim", {"num_candidates": 20, "slate_size": 10}),
                 "RecoGym 0.1.3.0 reco-gym-v1 (1,682 products)": ("recogym", {"num_products": 1682})} if args.peers else {}
    rng = np.random.default_rng(0)
    samples: dict[str, list[float]] = {}
    noops: dict[str, list[float]] = {}
    for _ in tqdm(range(args.rounds), desc="rounds"):
        samples.setdefault("RecSimEnv single (gym.make)", []).append(measure_single(single, args.seconds, rng))
        for (n, mode), envs in vecs.items():
            name = f"RecSimVectorEnv N={n}, autoreset {mode.upper()}"
            r = measure_vector(envs, args.seconds, rng)
            samples.setdefault(name, []).append(r["transitions_per_cpu_s"])
            noops.setdefault(name, []).append(r["noop_share"])
        for name, (peer, options) in peer_rows.items():
            r = peers.measure(peer, args.seconds, **options)
            samples.setdefault(name, []).append(r["steps"] / r["cpu_seconds"])
    med = {k: float(np.median(v)) for k, v in samples.items()}
    top_n = max(sizes)
    profiles = {
        "single env step": step_profile(_stepper(single, rng, False), 2000),
        f"vector env step, N={top_n}, NEXT_STEP": step_profile(_stepper(vecs[top_n, "next_step"], rng, True), 40),
    }
    cmd = (f"python -m benchmarks.throughput --sizes {args.sizes} --seconds {args.seconds} --rounds {args.rounds} "
           f"--feedback-mode {args.feedback_mode}" + ("" if args.peers else " --no-peers"))
    single_v = med["RecSimEnv single (gym.make)"]
    recsim_v = med.get("RecSim 0.2.4 interest_evolution (10 candidates, slate 2)")
    big = med[f"RecSimVectorEnv N={top_n}, autoreset NEXT_STEP"]
    lines = [
        f"# {ENV} throughput per CPU-second (ml-100k, data-fitted simulator, random slates of 10, feedback_mode={args.feedback_mode})",
        "", f"Command: `{cmd}`", "",
        f"Machine: {cpu_model()} ({platform.machine()}), {__import__('os').cpu_count()} cores. Median of {args.rounds} "
        f"interleaved rounds of {args.seconds:g} CPU-s per row. Vector rows count real transitions only "
        f"(autoreset-only rows excluded; their share in brackets).", "",
        "| env | steps (transitions) per CPU-s | x RecSimEnv single |", "| --- | ---: | ---: |",
    ]
    for k, v in med.items():
        extra = f" (no-ops {100 * np.median(noops[k]):.0f}%)" if k in noops and np.median(noops[k]) > 0 else ""
        lines.append(f"| {k}{extra} | {v:,.0f} | {v / single_v:.2f} |")
    recsim10 = med.get("RecSim 0.2.4 interest_evolution (20 candidates, slate 10)")
    same = med[f"RecSimVectorEnv N={top_n}, autoreset SAME_STEP"]
    ok = lambda cond: "met" if cond else "NOT met"  # noqa: E731
    lines += ["", f"Targets (issue 23): single env >= 8,500 steps per CPU-s -> {single_v:,.0f} ({ok(single_v >= 8500)})"
              + (f"; >= 2x RecSim: {single_v / recsim10:.2f}x RecSim at the same slate size (10 of 20 candidates; the "
                 f"issue's RecSim reference, 4,238, was measured at about this config's speed) ({ok(single_v >= 2 * recsim10)}), "
                 f"{single_v / recsim_v:.2f}x RecSim's tutorial config (slate 2 of 10) ({ok(single_v >= 2 * recsim_v)})"
                 if recsim_v and recsim10 else "")
              + f"; vector N={top_n} >= 100,000 real transitions per CPU-s -> {big:,.0f} with Gymnasium's default "
              f"NEXT_STEP autoreset ({ok(big >= 100_000)}), {same:,.0f} with SAME_STEP ({ok(same >= 100_000)}).", ""]
    for title, rows in profiles.items():
        lines += [f"Profile of one {title} (cProfile; own time, profiler overhead included):", "",
                  "| function | share of own time | us per step | calls per step |", "| --- | ---: | ---: | ---: |"]
        lines += [f"| `{r['function']}` | {100 * r['own_share']:.0f}% | {r['own_us_per_call']:.1f} | {r['calls_per_step']:.1f} |" for r in rows]
        lines.append("")
    lines += ["The per-step work of the env and of the fitted user runs in compiled loops (`recsim_env/kernels.py`, "
              "`simulators/fitted.py` `_answer_kernel`, numba); what is left is Python glue: argument checks, the info "
              "and observation dicts, one generator call per row for its uniforms (the reproducibility contract: each "
              "sub-env draws from its own generator), and Gymnasium's wrappers."]
    text = "\n".join(lines) + "\n"
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text(text)
    out.with_suffix(".json").write_text(json.dumps(
        {"command": cmd, "samples": samples, "median": med, "noop_share": noops, "profiles": profiles}, indent=2))
    plot_fitted(med, out.with_suffix(".png"))
    return 0


def plot_fitted(med: dict[str, float], png_path: Path) -> None:
    """Horizontal bars of steps per CPU-second, RecSimEnv rows in blue, peers in gray, the targets dotted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(med)
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(names) + 1.2))
    bars = ax.barh(names, [med[n] for n in names], color=["C0" if n.startswith("RecSim") and "0.2.4" not in n else "gray" for n in names])
    ax.bar_label(bars, fmt="{:,.0f}", padding=3, fontsize=8)
    ax.axvline(8500, color="C3", ls=":", label="single-env target 8,500")
    ax.axvline(100_000, color="C2", ls=":", label="vector target 100,000")
    ax.set_xscale("log")
    ax.set_xlabel("steps (real transitions) per CPU-second, log scale")
    ax.invert_yaxis()
    ax.legend(fontsize=8, loc="lower right")
    ax.tick_params(axis="y", labelsize=8)
    fig.tight_layout()
    fig.savefig(png_path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
