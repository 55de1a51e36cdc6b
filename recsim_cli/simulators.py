"""``recsim train-simulator`` (SFT / DPO / GRPO adapters, decision heads) and ``recsim eval-simulator`` (fidelity)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from recsim_cli.errors import UsageError

__all__ = ["add_parsers", "cmd_eval_simulator", "cmd_train_simulator"]


def cmd_train_simulator(args: argparse.Namespace) -> int:
    from simulators.training.scenes import SceneConfig
    from simulators.training.trainers import (
        SimulatorDPOConfig, SimulatorGRPOConfig, SimulatorSFTConfig, config_from_args, train_dpo, train_grpo, train_sft,
    )

    if args.stage == "heads":
        return _train_heads(args)
    shared = {
        "output_dir": args.out, "model": args.model, "dataset": args.dataset, "init_adapter": args.init_adapter,
        "full": args.full or None, "lora_r": args.lora_r, "max_steps": args.max_steps, "batch_size": args.batch_size,
        "grad_accum": args.grad_accum, "learning_rate": args.lr, "save_steps": args.save_steps, "seed": args.seed,
        "bf16": args.bf16 or None, "history_in_prompt": args.history_in_prompt,
    }
    try:
        if args.stage == "sft":
            config = config_from_args(SimulatorSFTConfig, {
                **shared, "feed_fraction": args.feed_fraction, "rationales": args.rationales,
                "unchosen_fraction": args.unchosen_fraction, "label_teacher": args.label_teacher,
                "answer_format": args.answer_format,
                "unchosen_sources": tuple(args.unchosen_sources.split(",")) if args.unchosen_sources else None,
                "scenes": SceneConfig(seed=args.seed),
            })
            out = train_sft(config)
        elif args.stage == "grpo":
            config = config_from_args(SimulatorGRPOConfig, {
                **shared, "rewards": args.rewards, "groups": args.groups, "num_generations": args.num_generations,
                "max_completion_length": args.max_completion_length, "beta": args.beta, "feed_fraction": args.feed_fraction,
                "temperature": args.temperature, "use_vllm": args.use_vllm or None,
                "role_weights": tuple(float(w) for w in args.role_weights.split(",")) if args.role_weights else None,
                "no_group_profiles": args.no_group_profiles or None, "scenes": SceneConfig(seed=args.seed),
            })
            out = train_grpo(config)
        else:
            config = config_from_args(SimulatorDPOConfig, {**shared, "pairs": args.pairs, "beta": args.beta})
            out = train_dpo(config)
    except (ValueError, FileNotFoundError) as err:
        raise SystemExit(f"train-simulator {args.stage}: {err}") from err
    print(f"saved {out} (card: {out}/TRAINING_CARD.md). Use it: LLMUserSimulator(adapter='{out}'), "
          f"or recsim eval-simulator --simulator {out}")
    return 0


def _train_heads(args: argparse.Namespace) -> int:
    from simulators.training.heads import SimulatorHeadsConfig, train_heads

    values = {"model": args.model, "adapter": args.init_adapter, "steps": args.max_steps, "lr": args.lr,
              "history_in_prompt": args.history_in_prompt, "seed": args.seed, "cuts_per_user": args.cuts_per_user,
              "weight_decay": args.weight_decay,
              "inputs": tuple(args.inputs.split(",")) if args.inputs else None,
              "hidden": tuple(int(h) for h in args.hidden.split(",")) if args.hidden else None,
              "pools": tuple(args.pools.split(",")) if args.pools else None}
    try:
        config = SimulatorHeadsConfig.from_dict({k: v for k, v in values.items() if v is not None})
        card = train_heads(config, args.out, args.dataset, command=args.command_line)
    except (ValueError, FileNotFoundError) as err:
        raise SystemExit(f"train-simulator heads: {err}") from err
    chosen = card["selection"][card["chosen"]]
    print(f"saved {args.out} (card: {args.out}/CARD.md); chosen {card['chosen']}: valid like/dislike AUC "
          f"{chosen['like_auc']:.3f}. Use it: LLMUserSimulator(heads='{args.out}'), or recsim eval-simulator --simulator heads:{args.out}")
    return 0


def cmd_eval_simulator(args: argparse.Namespace) -> int:
    from benchmarks.fidelity import FidelityConfig, run

    names = [*args.baselines.split(","), args.simulator] if args.baselines else [args.simulator]
    if args.protocol != "usermirrorer" and (args.scenes or args.save_scenes):
        raise UsageError(f"--scenes and --save-scenes apply to --protocol usermirrorer, not to --protocol {args.protocol}.")
    if args.add_to and args.protocol != "fidelity":
        raise UsageError(f"--add-to applies to the fidelity tables (--protocol fidelity), not to --protocol {args.protocol}.")
    config = FidelityConfig(per_user=args.per_user, negatives=tuple(args.negatives.split(",")), feed_per_user=args.feed_per_user)
    if args.protocol == "policy-ranking":
        from benchmarks.protocols import policy_ranking

        if args.simulator not in ("fitted", "llm"):
            raise UsageError(f"--protocol policy-ranking runs the env with --simulator fitted or llm, got {args.simulator!r}.")
        out = args.out or f"benchmarks/results/policy_ranking_{args.simulator}"
        policy_ranking.run(args.simulator, args.policies.split(","), args.dataset, policy_ranking.RankingConfig(), out,
                           args.command_line)
        return 0
    if args.protocol == "agent4rec":
        from benchmarks.protocols import agent4rec

        out = args.out or f"benchmarks/results/agent4rec_{Path(args.simulator.rstrip('/')).name.replace(':', '_')}"
        agent4rec.run(names, args.dataset, config, out, args.command_line)
        return 0
    if args.protocol == "usermirrorer":
        from benchmarks.protocols import usermirrorer

        out = args.out or f"benchmarks/results/usermirrorer_{Path(args.simulator.rstrip('/')).name.replace(':', '_')}"
        try:
            cfg = usermirrorer.UserMirrorerConfig(n_scenes=args.n_scenes)
        except ValueError as e:
            raise UsageError(str(e)) from None
        usermirrorer.run(names, args.dataset, cfg, out, args.command_line, args.scenes, args.save_scenes)
        return 0
    out = args.out or f"benchmarks/results/fidelity_{Path(args.simulator.rstrip('/')).name.replace(':', '_')}"
    results = run(names, args.dataset, config, out, args.command_line, args.add_to, args.perception)
    from simulators.llm.models import ModelNotFoundError, resolve_adapter_dir

    try:
        card = Path(resolve_adapter_dir(args.simulator.split(":", 1)[-1])) / "training_card.json"
    except ModelNotFoundError:  # not an adapter (fitted, llm, a full model)
        card = None
    if card is not None and card.is_file():  # a trained adapter: its card gains the fidelity table
        from simulators.training.trainers import write_card

        facts = json.loads(card.read_text())
        facts["fidelity"] = results["markdown"]
        write_card(card.parent, facts)
    return 0


def cmd_serve_simulator(args: argparse.Namespace) -> int:
    import time

    from simulators.llm.serve import start_server

    server = start_server(args.model, args.adapter, port=args.port, python=args.python, dtype=args.dtype)
    kwargs = {"heads": None, "adapter": args.adapter, "backend": "vllm", "base_url": server.url}
    print(f"vLLM server for {server.model} at {server.url} (pid {server.pid}, log {server.log}).\n"
          f"Use it: gym.make(\"RecSimEnv-v1\", simulator=\"llm\", simulator_kwargs={kwargs!r})\nCtrl-C stops it.", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


def add_parsers(sub) -> None:
    _add_train_simulator(sub)
    _add_eval_simulator(sub)
    p = sub.add_parser("serve-simulator", help="a vLLM server (loopback) for the LLM user simulator's model (make vllm-venv first)")
    p.set_defaults(func=cmd_serve_simulator)
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--adapter", default=None, help="merged into the served weights (cached)")
    p.add_argument("--port", type=int, default=None, help="default: a free port")
    p.add_argument("--python", default=None, help="python of a virtualenv with vllm (default .venv-vllm)")
    p.add_argument("--dtype", default="float32", help="server dtype (bfloat16 is emulated, slow, on CPUs without avx512_bf16)")


def _add_eval_simulator(sub) -> None:
    p = sub.add_parser("eval-simulator", help="fidelity of a simulator on held-out test users (benchmarks/fidelity.py)")
    p.set_defaults(func=cmd_eval_simulator)
    p.add_argument("--simulator", required=True, help="fitted, llm, llm:<adapter dir>, or an adapter / model directory")
    p.add_argument("--protocol", default="fidelity", choices=["fidelity", "usermirrorer", "agent4rec", "policy-ranking"],
                   help="fidelity: this project's scenes (choice, like/dislike, judge, reason); usermirrorer: 5-option "
                   "choice on scenes built as UserMirrorer's code builds them (benchmarks/protocols/usermirrorer.py); "
                   "agent4rec: like/dislike at "
                   "1:1, 1:3, 1:9 and rating RMSE / MAE (benchmarks/protocols/agent4rec.py); policy-ranking: Spearman's "
                   "rho between policies' offline metrics on held-out logs and their returns in the env "
                   "(benchmarks/protocols/policy_ranking.py)")
    p.add_argument("--policies", default="random,popular,content,BPR,LightGCN,SASRec,GRU4Rec,NARM,ppo",
                   help="policy-ranking: heuristics (random, popular, content), RecBole models by name, ppo (the "
                   "candidates-mode agent of `recsim rollout --policy ppo`)")
    p.add_argument("--scenes", default=None, help="usermirrorer: score UserMirrorer's released eval file (<dataset>_eval.jsonl) "
                   "instead of scenes built here")
    p.add_argument("--save-scenes", default=None, help="usermirrorer: also write the scenes in their eval-file format")
    p.add_argument("--n-scenes", type=int, default=1000, help="usermirrorer: decisions drawn for built scenes")
    p.add_argument("--baselines", default="random,popularity,fitted", help="comma-separated rows shown beside it ('' for none)")
    p.add_argument("--dataset", default="ml-100k")
    p.add_argument("--per-user", type=int, default=2, help="choice scenes per test user")
    p.add_argument("--feed-per-user", type=int, default=2, help="feed scenes per test user")
    p.add_argument("--negatives", default="exposure", help="choice distractors: exposure, uniform, popular (comma-separated)")
    p.add_argument("--out", default=None, help="output path without suffix (default benchmarks/results/fidelity_<name>)")
    p.add_argument("--perception", default=None, help="a `recsim perceive` folder: the LLM contenders read its video captions")
    p.add_argument("--add-to", default=None, help="a results path without suffix (e.g. benchmarks/results/fidelity): put this "
                   "row beside that table's, on its scenes (the options must match the ones it was made with)")


def _add_train_simulator(sub) -> None:
    from simulators.training.rewards import DESIGNS  # light: no model code

    p = sub.add_parser("train-simulator", help="fine-tune the LLM user simulator (TRL SFT, DPO or GRPO; LoRA by default), "
                       "or train its decision heads")
    p.set_defaults(func=cmd_train_simulator)
    p.add_argument("stage", choices=["sft", "dpo", "grpo", "heads"])
    p.add_argument("--out", required=True, help="output folder (adapter, checkpoints/, TRAINING_CARD.md); a rerun resumes")
    p.add_argument("--dataset", default="ml-100k")
    p.add_argument("--model", default=None, help="base model: smollm2-135m (default), a checkpoint dir or a hub id")
    p.add_argument("--init-adapter", default=None, help="start from this adapter (DPO: the SFT adapter)")
    p.add_argument("--full", action="store_true", help="train all weights instead of a LoRA adapter")
    p.add_argument("--lora-r", type=int, default=None)
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--grad-accum", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--save-steps", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--bf16", action="store_true", help="bf16 autocast (CPU: ~1.5x faster)")
    p.add_argument("--history-in-prompt", type=int, default=None)
    p.add_argument("--feed-fraction", type=float, default=None, help="sft / grpo: share of feed-item examples")
    p.add_argument("--rationales", default=None, help="sft: JSONL of distilled decision processes to mix in")
    p.add_argument("--label-teacher", default=None, help="sft: teacher LLM for skip reasons, <model>[+<adapter dir>]")
    p.add_argument("--unchosen-fraction", type=float, default=None,
                   help="sft: share of feed examples that are passed-over exposure options, shown as skips")
    p.add_argument("--unchosen-sources", default=None,
                   help="sft: comma-separated option sources of those (random,collaborative,content; default any); "
                        "'random' = never-interacted items")
    p.add_argument("--answer-format", default=None, choices=["letters", "think"],  # simulators.llm.prompts.ANSWER_FORMATS (not imported: the parser stays light)
                   help="sft: 'think' trains GRPO's <think>/<answer> format (the warm-up before grpo)")
    p.add_argument("--pairs", default=None, help="dpo: JSONL of prompt/chosen/rejected rows (recsim distill)")
    p.add_argument("--beta", type=float, default=None, help="dpo: temperature; grpo: KL weight to the reference")
    p.add_argument("--rewards", default=None, choices=DESIGNS, help="grpo: reward design")
    p.add_argument("--groups", default=None, help="grpo --rewards gagrpo: user-groups JSON (recsim build-groups)")
    p.add_argument("--role-weights", default=None, help="grpo gagrpo: W_T,W_S,W_G (default 1,0.5,0.5)")
    p.add_argument("--no-group-profiles", action="store_true", help="grpo gagrpo ablation: no group-profile prompts")
    p.add_argument("--num-generations", type=int, default=None, help="grpo: completions per prompt")
    p.add_argument("--max-completion-length", type=int, default=None, help="grpo: new tokens per completion")
    p.add_argument("--use-vllm", action="store_true", help="grpo: generate with vLLM (GPU, vllm installed)")
    p.add_argument("--inputs", default=None, help="heads: llm,cues (default), llm (no collaborative numbers) or cues (no LLM)")
    p.add_argument("--hidden", default=None, help="heads: candidate hidden widths, e.g. 0,64 (0: linear)")
    p.add_argument("--pools", default=None, help="heads: candidate read-out layers, final,mid")
    p.add_argument("--cuts-per-user", type=int, default=None, help="heads: cut points (rows) per user")
    p.add_argument("--weight-decay", type=float, default=None, help="heads: AdamW weight decay (default 0.01)")
    p.add_argument("--temperature", type=float, default=None,
                   help="grpo: sampling temperature of the completions (default 1.0; higher: more varied answers per prompt)")
