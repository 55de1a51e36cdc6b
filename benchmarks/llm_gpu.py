"""The LLM user on a GPU, in one run of at most ``--budget-s`` seconds (default 540: a device call allows 600).

Measures, on ``--device`` (``cuda``) in ``--dtype`` (bf16):

* decisions/s of the batched option scorer (tree scorer, feed of 10: judge, then reason or rating) at several users
  per batch, on the same kind of scenes as ``benchmarks/throughput.py`` (target on one H200: >= 5,000 decisions/s);
* the same decisions made by one ``generate`` call per decision (SUBER / Agent4Rec style) and the speed-up over it;
* env-steps/s of a 64-env LLM vector env in page and feed mode, each context recomputed every step vs kept across
  steps (``memory_growth=20``).

A vLLM server is not part of it: the CUDA ``vllm`` wheel (~400 MB with its torch pin) cannot travel to a machine that
reaches no package index (at most 64 MiB travel), and no vLLM is installed there.

The GPU machine has neither this project's packages nor the model's GGUF (98 MB): ``--bundle DIR`` (run here) writes
what travels: the default model's config and tokenizer (no weights), the ml-100k atomic files and the wheels the
machine lacks (gymnasium, farama-notifications). There, ``--random-weights`` builds the model from that config with
seeded random weights: the same architecture and shapes, hence the same cost per token; the answers are not the
model's (the option mass is ignored: ``min_option_mass=0``), which a speed measurement does not need. For the real
weights, a converted checkpoint directory passed as ``--model`` (bf16 ~270 MB) does not fit one call either; the
GGUF split in two (``split -b 50M``) can travel in two back-to-back calls while the machine is warm, with the
``gguf`` wheel, to be joined and converted there (../shared/PLATFORM.md; not tried).

Here: ``python -m benchmarks.llm_gpu --bundle .gpu``. On the device (repository root, ``.gpu`` carried)::

    python3 -m pip install -q --no-index --no-deps --target /tmp/site .gpu/wheels/*.whl && export PYTHONPATH=/tmp/site
    RECSIM_CACHE=/tmp/rc python3 -m benchmarks.llm_gpu --device cuda --model .gpu/model --random-weights \\
        --dataset .gpu/ml-100k --out $OUT/llm_gpu

It writes ``<out>.md`` and ``<out>.json`` (commit them under ``benchmarks/results/``). On this CPU the same command
with ``--device cpu --dtype float32 --batches 2 --env-envs 2 --env-steps 1 --generate-users 1`` is its smoke test.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

__all__ = ["main", "write_bundle"]

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja",
                   "generation_config.json", "config.json")
TRAVEL_WHEELS = ("gymnasium", "farama-notifications")


def write_bundle(out: Path, model: str = "smollm2-135m", dataset: str = "ml-100k") -> Path:
    """What the GPU run needs that its machine lacks, under ``out`` (a few MB): model config + tokenizer, dataset,
    wheels."""
    from importlib.metadata import version

    from recsim_env.data import resolve_dataset_dir
    from simulators.llm.models import resolve_model_dir

    src = Path(resolve_model_dir(model))
    (out / "model").mkdir(parents=True, exist_ok=True)
    for name in TOKENIZER_FILES:
        if (src / name).is_file():
            shutil.copy2(src / name, out / "model" / name)
    data = resolve_dataset_dir(dataset)
    shutil.copytree(data, out / data.name, dirs_exist_ok=True)
    pins = [f"{name}=={version(name)}" for name in TRAVEL_WHEELS]
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "-d",
                    str(out / "wheels"), *pins], check=True)
    return out


def random_model(config_dir: str, dtype: str) -> str:
    """A checkpoint with ``config_dir``'s architecture and tokenizer and seeded random weights (in a temp dir)."""
    import tempfile

    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    out = Path(tempfile.mkdtemp(prefix="recsim-random-model-"))
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(config_dir), dtype=getattr(torch, dtype))
    model.save_pretrained(out)
    for name in TOKENIZER_FILES:
        if (Path(config_dir) / name).is_file() and not (out / name).exists():
            shutil.copy2(Path(config_dir) / name, out / name)
    return str(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bundle", default=None, help="write what travels to the GPU machine into this folder, then stop")
    p.add_argument("--device", default="cuda")
    p.add_argument("--dtype", default="bfloat16")
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--random-weights", action="store_true", help="the model's architecture with seeded random weights")
    p.add_argument("--dataset", default="ml-100k")
    p.add_argument("--batches", default="64,256,1024", help="users per scorer batch")
    p.add_argument("--generate-users", type=int, default=4, help="users x 10 items decided by generate + parse")
    p.add_argument("--env-envs", type=int, default=64)
    p.add_argument("--env-steps", type=int, default=5)
    p.add_argument("--budget-s", type=float, default=540.0, help="parts not started by then are skipped (and said so)")
    p.add_argument("--out", default="benchmarks/results/llm_gpu")
    args = p.parse_args(argv)
    if args.bundle:
        print(f"bundle written to {write_bundle(Path(args.bundle), args.model, args.dataset)}")
        return 0
    start = time.monotonic()
    left = lambda: args.budget_s - (time.monotonic() - start)

    import torch

    import recsim_env  # noqa: F401
    from benchmarks.llm_backends import step_times
    from benchmarks.throughput import _sync, generate_and_parse, matmul_flops, scene_requests
    from recsim_env.data import load_dataset
    from simulators.llm import LLMUserSimulator

    model = random_model(args.model, args.dtype) if args.random_weights else args.model
    ds = load_dataset(args.dataset)
    common = {"model": model, "dtype": args.dtype, "device": args.device, "adapter": None, "heads": None,
              **({"min_option_mass": 0.0} if args.random_weights else {})}
    sim = LLMUserSimulator(dataset=ds, cache_size=0, kv_cache_tokens=0, **{k: v for k, v in common.items() if k != "heads"})
    params = sum(x.numel() for x in sim.model.parameters())
    peak = matmul_flops(1.0, device=args.device)
    sim.respond(scene_requests(ds, 2, seed=0), [np.random.default_rng(0)] * 2)  # warm-up
    rows, skipped = {}, []
    for batch in (int(b) for b in args.batches.split(",")):
        if left() < 60:
            skipped.append(f"scorer batch {batch}")
            continue
        sim.config = type(sim.config)(**{**sim.config.__dict__, "batch_size": batch})
        reqs = scene_requests(ds, batch, seed=batch)
        _sync(args.device)
        t0, tok0 = time.perf_counter(), sim.scorer.tokens_forwarded
        sim.respond(reqs, [np.random.default_rng(i) for i in range(len(reqs))])
        _sync(args.device)
        dt, toks = time.perf_counter() - t0, sim.scorer.tokens_forwarded - tok0
        n = sum(len(r.slate) for r in reqs)
        rows[f"option scoring, {batch} users per batch"] = {"decisions_per_s": n / dt, "tokens_per_s": toks / dt,
                                                            "share_of_peak": 2 * params * toks / dt / peak}
    gen = None
    if left() > 60:
        dt, toks, n, fails = generate_and_parse(sim, scene_requests(ds, args.generate_users, seed=7))
        gen = {"decisions_per_s": n / dt, "tokens_per_s": toks / dt, "share_of_peak": 2 * params * toks / dt / peak,
               "parse_failures": fails, "decisions": n}
    else:
        skipped.append("generate + parse")
    del sim
    env_rows = {}
    for mode in ("page", "feed"):
        for name, extra in (("context recomputed", {"kv_cache_tokens": 0}), ("context kept", {"memory_growth": 20})):
            if left() < 90:
                skipped.append(f"env {mode}, {name}")
                continue
            times, _ = step_times({**common, **extra}, args.env_envs, args.env_steps, mode, 10, dataset=args.dataset)
            env_rows[f"{mode}, {name}"] = args.env_envs * len(times) / sum(times)  # answers come back to the CPU: synced
    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else (platform.processor() or platform.machine())
    best = max((r["decisions_per_s"] for r in rows.values()), default=float("nan"))
    cmd = " ".join(["python -m benchmarks.llm_gpu", *(argv if argv is not None else sys.argv[1:])])
    md = [f"# LLM user on {device_name} ({args.dtype}, ml-100k feed of 10)", "", f"Command: `{cmd}`", "",
          f"Model: {args.model}{' (its architecture, seeded random weights)' if args.random_weights else ''}, "
          f"{params / 1e6:.1f} M parameters; bf16 matmul peak measured {peak / 1e12:.1f} TFLOP/s.", "",
          "| method | decisions/s | forward tokens/s | share of matmul peak |", "| --- | ---: | ---: | ---: |"]
    md += [f"| {k} | {v['decisions_per_s']:,.0f} | {v['tokens_per_s']:,.0f} | {v['share_of_peak']:.1%} |" for k, v in rows.items()]
    if gen:
        md.append(f"| generate + parse, 1 per decision ({gen['parse_failures']}/{gen['decisions']} unparsable) | "
                  f"{gen['decisions_per_s']:,.1f} | {gen['tokens_per_s']:,.0f} | {gen['share_of_peak']:.1%} |")
        md += ["", f"Best batched scorer / generate + parse: {best / gen['decisions_per_s']:.1f}x (target >= 20x)."]
    md += ["", f"Best scorer decisions/s: {best:,.0f} (target on one H200: >= 5,000).", "",
           f"| env ({args.env_envs} envs, {args.env_steps} timed steps) | env-steps/s |", "| --- | ---: |"]
    md += [f"| {k} | {v:,.2f} |" for k, v in env_rows.items()]
    if skipped:
        md += ["", f"Skipped for the time budget ({args.budget_s:.0f} s): {', '.join(skipped)}."]
    md += ["", f"Wall time {time.monotonic() - start:.0f} s."]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text("\n".join(md) + "\n")
    out.with_suffix(".json").write_text(json.dumps({"scorer": rows, "generate": gen, "env": env_rows, "skipped": skipped,
                                                    "peak_flops": peak, "params": params, "command": cmd}, indent=1) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
