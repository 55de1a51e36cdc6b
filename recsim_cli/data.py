"""``recsim distill``, ``recsim pairs`` and ``recsim build-groups``: training data for the LLM user simulator."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

__all__ = ["add_parsers", "cmd_build_groups", "cmd_distill", "cmd_pairs"]


def cmd_distill(args: argparse.Namespace) -> int:
    from recsim_env.data import load_dataset
    from simulators.llm import LLMUserSimulator
    from simulators.training.distill import DistillConfig, distill, write_rows
    from simulators.training.scenes import SceneConfig, choice_scenes

    ds = load_dataset(args.dataset)

    def simulator(spec: str):  # a model name/dir, or model+adapter as "<model>+<adapter dir>"
        model, _, adapter = spec.partition("+")
        return LLMUserSimulator(model=model or "smollm2-135m", adapter=adapter or None, dataset=ds, batch_size=8)

    teacher = simulator(args.teacher)
    student = teacher if args.student == args.teacher else simulator(args.student)
    predictor = simulator(args.predictor)
    scenes = choice_scenes(ds, "train", SceneConfig(per_user=1, seed=args.seed))
    scenes = [scenes[i] for i in np.random.default_rng(args.seed).permutation(len(scenes))[: args.scenes]]
    config = DistillConfig(n_rationales=args.n_rationales, keep_fraction=args.keep_fraction, seed=args.seed)
    sft, pairs, counts = distill(scenes, teacher, student, predictor, config)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_rows(sft, out / "rationales.jsonl")
    write_rows(pairs, out / "pairs.jsonl")
    (out / "distill.json").write_text(json.dumps({"counts": counts, "command": args.command_line}, indent=2) + "\n")
    print(f"{counts}; wrote {out}/rationales.jsonl (SFT: --rationales) and {out}/pairs.jsonl (DPO: --pairs)")
    if counts["teacher_not_a_process"] > config.n_rationales * len(scenes) / 2:
        print(f"warning: {counts['teacher_not_a_process']} of {config.n_rationales * len(scenes)} teacher rationales are bare answers, "
              "not decision processes: this teacher does not think first (an SFT adapter trained on direct answers "
              "often does this). Use a base/instruct model as --teacher, or an adapter trained with --rationales.", file=sys.stderr)
    return 0


def cmd_pairs(args: argparse.Namespace) -> int:
    from recsim_env.data import load_dataset
    from simulators.llm import LLMUserSimulator
    from simulators.training.distill import write_rows
    from simulators.training.preferences import PairConfig, behaviour_pairs
    from simulators.training.scenes import SceneConfig

    try:
        config = PairConfig(n_pairs=args.n_pairs, feed_fraction=args.feed_fraction, unseen_fraction=args.unseen_fraction,
                            seed=args.seed, scenes=SceneConfig(seed=args.seed))
    except ValueError as err:
        raise SystemExit(f"pairs: {err}") from err
    ds = load_dataset(args.dataset)
    model, _, adapter = args.reference.partition("+")
    reference = LLMUserSimulator(model=model or "smollm2-135m", adapter=adapter or None, dataset=ds, batch_size=8)
    rows, counts = behaviour_pairs(ds, reference.scenes, config, reference if args.hard_negatives else None)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_rows(rows, out / "pairs.jsonl")
    (out / "pairs.json").write_text(json.dumps({"counts": counts, "command": args.command_line}, indent=2) + "\n")
    print(f"{counts}; wrote {out}/pairs.jsonl (DPO: recsim train-simulator dpo --pairs {out}/pairs.jsonl)")
    return 0


def cmd_build_groups(args: argparse.Namespace) -> int:
    from recsim_env.data import load_dataset
    from simulators.groups import GroupConfig, build_groups, write_groups

    config = GroupConfig(k=args.k, mode=args.mode, seed=args.seed)
    ds = load_dataset(args.dataset)
    llm = None
    if args.llm:
        from simulators.llm import LLMUserSimulator

        model, _, adapter = args.llm.partition("+")
        llm = LLMUserSimulator(model=model or "smollm2-135m", adapter=adapter or None, dataset=ds)
    groups = build_groups(ds, config, llm)
    write_groups(groups, args.out, config, args.command_line)
    for g in groups:
        print(f"group {g.group_id}: {g.profile_summary} {g.recommendation_directions}")
    print(f"{len(groups)} groups (of k={args.k}) covering {len({m for g in groups for m in g.members})} users; wrote {args.out}")
    return 0


def add_parsers(sub) -> None:
    d = sub.add_parser("distill", help="UserMirrorer distillation: decision processes -> SFT rows and DPO pairs")
    d.set_defaults(func=cmd_distill)
    d.add_argument("--out", required=True, help="folder for rationales.jsonl, pairs.jsonl, distill.json")
    d.add_argument("--teacher", required=True, help="model name/dir, optionally +<adapter dir> (e.g. smollm2-135m+runs/sft)")
    d.add_argument("--student", default="smollm2-135m")
    d.add_argument("--predictor", default="smollm2-135m")
    d.add_argument("--dataset", default="ml-100k")
    d.add_argument("--scenes", type=int, default=100, help="train choice scenes to distill")
    d.add_argument("--n-rationales", type=int, default=4)
    d.add_argument("--keep-fraction", type=float, default=0.5)
    d.add_argument("--seed", type=int, default=0)
    pr = sub.add_parser("pairs", help="DPO preference pairs from the logs: real answer vs a wrong one (no teacher needed)")
    pr.set_defaults(func=cmd_pairs)
    pr.add_argument("--out", required=True, help="folder for pairs.jsonl and pairs.json")
    pr.add_argument("--reference", default="smollm2-135m", help="model[+adapter dir] whose most likely wrong option is rejected "
                    "(the model DPO starts from, e.g. smollm2-135m+simulators/llm/adapters/smollm2-135m-ml100k-sft)")
    pr.add_argument("--no-hard-negatives", dest="hard_negatives", action="store_false",
                    help="draw the rejected option uniformly instead of asking the reference")
    pr.add_argument("--dataset", default="ml-100k")
    pr.add_argument("--n-pairs", type=int, default=256)
    pr.add_argument("--feed-fraction", type=float, default=0.5, help="share of feed-judge pairs")
    pr.add_argument("--unseen-fraction", type=float, default=0.5, help="share of feed pairs on never-interacted items (skips)")
    pr.add_argument("--seed", type=int, default=0)
    g = sub.add_parser("build-groups", help="user groups (UGM): summarize, cluster, reflect, profiles -> JSON")
    g.set_defaults(func=cmd_build_groups)
    g.add_argument("--out", required=True, help="JSON file")
    g.add_argument("--dataset", default="ml-100k")
    g.add_argument("--k", type=int, default=20)
    g.add_argument("--mode", default="interest", choices=["interest", "demographics", "both"])
    g.add_argument("--llm", default=None, help="model[+adapter dir] that writes the group summaries and judges the members "
                   "(default: both measured from the data)")
    g.add_argument("--seed", type=int, default=0)
