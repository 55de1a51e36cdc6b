"""``recsim`` command line: demo, rollouts of policies, and training of SB3 agents."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np

import recsim_env  # noqa: F401  (registers RecSimEnv-v0)
from agents.sb3_agents import ALGOS

__all__ = ["main"]


RECBOLE_NAMES = {"bpr": "BPR", "lightgcn": "LightGCN", "sasrec": "SASRec", "gru4rec": "GRU4Rec", "narm": "NARM"}
_TRAINED: dict = {}  # trained backbones / agents, reused across seeds of one command


def _policy(name: str, env: gym.Env, seed: int = 0, args: argparse.Namespace | None = None):
    from agents.heuristics import ContentPolicy, PopularityPolicy, RandomPolicy

    if name == "random":
        return RandomPolicy(env, seed=seed)
    if name == "content":
        return ContentPolicy(env)
    if name.startswith("rerank-"):  # the env's own simulator re-ranks a backbone
        from agents.rerank import RerankPolicy

        return RerankPolicy(env, _policy(name[len("rerank-"):], env, seed, args), seed=seed)
    if name in ("popular", "popularity"):
        return PopularityPolicy(env)
    if name.lower() in RECBOLE_NAMES or name.startswith("recbole:"):  # recbole:<any RecBole model>
        from agents.recbole_policy import RecBoleConfig, RecBolePolicy

        model = RECBOLE_NAMES.get(name.lower()) or name.split(":", 1)[1]
        epochs = getattr(args, "recbole_epochs", RecBoleConfig.epochs)
        key = (model, epochs, str(env.unwrapped.batch.dataset.path))
        if key not in _TRAINED:
            _TRAINED[key] = RecBolePolicy.train(model, env.unwrapped.batch.dataset, RecBoleConfig(epochs=epochs))
        return _TRAINED[key].bind(env)
    algo, _, path = name.partition(":")
    if algo in ALGOS:  # ppo:<folder> evaluates a saved agent; bare ppo trains one (cached) on the fitted simulator
        from agents.sb3_agents import SB3Policy, cached_agent

        if path:
            return SB3Policy.load(path).bind(env)
        timesteps, env_kwargs = getattr(args, "agent_timesteps", 60_000), _env_kwargs(args, training=True)
        key = (algo, timesteps, repr(sorted(env_kwargs.items())))
        if key not in _TRAINED:
            _TRAINED[key] = cached_agent(algo, timesteps, env_kwargs)
        return SB3Policy.load(_TRAINED[key]).bind(env)
    if ":" in name:  # my_module:my_policy
        import importlib

        module, attr = name.split(":", 1)
        return getattr(importlib.import_module(module), attr)
    raise SystemExit(
        f"Unknown policy {name!r}: use random, popular, content, {', '.join(RECBOLE_NAMES)}, recbole:<Model>, "
        f"{', '.join(ALGOS)} (or <algo>:<folder of a saved agent>), rerank-<backbone>, or module:attribute."
    )


def _env_kwargs(args: argparse.Namespace | None, training: bool = False) -> dict:
    """The env the command runs; agents train on the fitted simulator and the train users."""
    if args is None:
        return {}
    simulator, model = getattr(args, "simulator", "fitted"), getattr(args, "simulator_model", None)
    adapter = getattr(args, "simulator_adapter", None)
    llm = {}
    if model:
        llm["model"] = model
    if adapter:  # "none": the base model
        llm["adapter"] = None if adapter.lower() == "none" else adapter
    heads = getattr(args, "simulator_heads", None)
    if heads:  # "none": the model's answer letters decide
        llm["heads"] = None if heads.lower() == "none" else heads
    kwargs = {"dataset": args.dataset, "feedback_mode": args.feedback_mode, "action_mode": args.action_mode,
              "slate_size": args.slate_size, "num_candidates": args.num_candidates,
              "user_split": getattr(args, "user_split", "train"), "simulator": simulator,
              "simulator_kwargs": llm if simulator == "llm" and llm else None}
    if training:
        kwargs |= {"simulator": "fitted", "simulator_kwargs": None, "user_split": "train"}
    return kwargs


def cmd_rollout(args: argparse.Namespace) -> int:
    from benchmarks.rollout import compare_policies, write_results

    def env_factory():
        return gym.make("RecSimEnv-v0", **_env_kwargs(args))

    policies = {name: (lambda env, seed, name=name: _policy(name, env, seed, args)) for name in args.policy.split(",")}
    seeds = list(range(args.seeds))
    results = compare_policies(policies, env_factory, args.episodes, seeds)
    keys = ["return", "session_length", "click_rate", "fast_skip_rate", "total_play_rate", "coverage"]
    print(f"{'policy':<12}" + "".join(f"{k:>17}" for k in keys))
    for name, r in results.items():
        print(f"{name:<12}" + "".join(f"{r['summary'][k][0]:>17.3f}" for k in keys))
    if args.out:
        command = args.command_line if args.command == "rollout" else "recsim demo"
        write_results(
            results, args.out, command,
            f"RecSimEnv-v0 rollouts ({args.dataset}, {args.feedback_mode} mode, {args.simulator} simulator)",
        )
        print(f"wrote {args.out}/results.{{json,md,png}}")
    return 0


def cmd_train_agent(args: argparse.Namespace) -> int:
    from agents.base import rollout
    from agents.sb3_agents import AgentConfig, SB3Policy, train_agent

    env_kwargs = _env_kwargs(args, training=True)
    config = AgentConfig(algo=args.algo, total_timesteps=args.timesteps, seed=args.seed, env_kwargs=env_kwargs,
                         policy=args.agent_policy)
    train_agent(config, args.out)
    env = gym.make("RecSimEnv-v0", **{**env_kwargs, "user_split": "valid"})
    metrics = rollout(env, SB3Policy.load(args.out).bind(env), episodes=20, seed=10_000, desc="valid users").metrics()
    print(f"saved {args.out}/model.zip; valid users, 20 episodes: return {metrics['return']:.2f}, "
          f"click rate {metrics['click_rate']:.3f}. Evaluate: recsim rollout --policy {args.algo}:{args.out} "
          f"--feedback-mode {args.feedback_mode} --action-mode {args.action_mode}")
    return 0


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


def cmd_eval_simulator(args: argparse.Namespace) -> int:
    from benchmarks.fidelity import FidelityConfig, run

    names = [*args.baselines.split(","), args.simulator] if args.baselines else [args.simulator]
    config = FidelityConfig(per_user=args.per_user, negatives=tuple(args.negatives.split(",")), feed_per_user=args.feed_per_user)
    out = args.out or f"benchmarks/results/fidelity_{Path(args.simulator.rstrip('/')).name.replace(':', '_')}"
    results = run(names, args.dataset, config, out, args.command_line, args.add_to)
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


def _add_eval_simulator(sub) -> None:
    p = sub.add_parser("eval-simulator", help="fidelity of a simulator on held-out test users (benchmarks/fidelity.py)")
    p.add_argument("--simulator", required=True, help="fitted, llm, llm:<adapter dir>, or an adapter / model directory")
    p.add_argument("--baselines", default="random,popularity,fitted", help="comma-separated rows shown beside it ('' for none)")
    p.add_argument("--dataset", default="ml-100k")
    p.add_argument("--per-user", type=int, default=2, help="choice scenes per test user")
    p.add_argument("--feed-per-user", type=int, default=2, help="feed scenes per test user")
    p.add_argument("--negatives", default="exposure", help="choice distractors: exposure, uniform, popular (comma-separated)")
    p.add_argument("--out", default=None, help="output path without suffix (default benchmarks/results/fidelity_<name>)")
    p.add_argument("--add-to", default=None, help="a results path without suffix (e.g. benchmarks/results/fidelity): put this "
                   "row beside that table's, on its scenes (the options must match the ones it was made with)")


def _add_train_simulator(sub) -> None:
    from simulators.training.rewards import DESIGNS  # light: no model code

    p = sub.add_parser("train-simulator", help="fine-tune the LLM user simulator (TRL SFT, DPO or GRPO; LoRA by default), "
                       "or train its decision heads")
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


def llm_demo(n_users: int, seed: int) -> None:
    """A few users answer a popularity slate in feed mode, with the LLM simulator and its reasons."""
    from agents.heuristics import PopularityPolicy

    env = gym.make(
        "RecSimEnv-v0", simulator="llm", simulator_kwargs={"explain": "negative"}, feedback_mode="feed",
        slate_size=5, user_split="test",
    )
    core = env.unwrapped
    sim = core.simulator
    if sim.heads is not None:
        tuned = f"base model + decision heads {Path(sim.config.heads).name} (trained here; reasons in words: base model)"
    else:
        tuned = f"adapter {sim.adapter} (trained here)" if sim.adapter else "base model, not fine-tuned"
    print(f"\n== LLM user simulator (SmolLM2-135M-Instruct, offline, {tuned}), feed mode, {n_users} users ==")
    policy = PopularityPolicy(env)
    for u in range(n_users):
        obs, info = env.reset(seed=seed + u)
        obs, reward, _, _, info = env.step(policy.act(obs, info))
        print(f"\nuser {info['user_id']} ({core.simulator.scenes.user_texts[info['user_index']]}), reward {reward:.2f}")
        for rec, p_skip in zip(info["feedback"], info["skip_probs"]):
            title = core.simulator.scenes.item_texts[rec["item_id"]].split(" (")[0]
            verdict = f"skips ({rec['reason_class'] or 'low rating'})" if rec["skipped"] else f"watches, rates {rec['rating']:.0f}"
            print(f"  {title[:38]:<38} P(skip)={p_skip:.2f} -> {verdict}")
            if rec["reason_text"]:
                print(f"      \"{rec['reason_text'][:100]}\"")
        if info["simulator_errors"]:
            print(f"  ({info['simulator_errors']} unusable model answers; see simulators/llm/simulator.py)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="recsim", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_ in (("demo", "random vs popularity on ml-100k, both feedback modes"), ("rollout", "roll out policies")):
        p = sub.add_parser(name, help=help_)
        p.add_argument("--policy", default="random,popular", help="comma-separated: random, popular, content, bpr, lightgcn, sasrec, gru4rec, narm, recbole:<Model>, ppo, a2c, dqn, maskable_ppo, <algo>:<agent folder>, rerank-<backbone>, module:attr")
        p.add_argument("--dataset", default="ml-100k")
        p.add_argument("--simulator", default="fitted", choices=["fitted", "llm"], help="user simulator of the env")
        p.add_argument("--simulator-model", default=None, help="llm: model name or checkpoint dir (default smollm2-135m)")
        p.add_argument("--simulator-adapter", default=None,
                       help="llm: adapter dir or shipped name; 'none' = the base model (e.g. smollm2-135m-ml100k-sgrpo, the SFT+S-GRPO adapter)")
        p.add_argument("--simulator-heads", default=None,
                       help="llm: decision-heads dir or shipped name; 'none' = the answer letters decide (default on ml-100k: "
                            "the shipped heads, unless --simulator-adapter is given)")
        p.add_argument("--feedback-mode", default="feed", choices=["page", "feed"])
        p.add_argument("--action-mode", default="catalog", choices=["catalog", "candidates"])
        p.add_argument("--slate-size", type=int, default=10)
        p.add_argument("--num-candidates", type=int, default=50, help="candidates mode: items offered per step")
        p.add_argument("--user-split", default="test", choices=["train", "valid", "test", "all"])
        p.add_argument("--episodes", type=int, default=50, help="episodes per seed")
        p.add_argument("--seeds", type=int, default=1, help="seeds 0..N-1; metrics get 95%% intervals over seeds")
        p.add_argument("--seed", type=int, default=0, help="seed of the LLM demo users")
        p.add_argument("--out", default=None, help="write results.{json,md,png} to this folder")
        p.add_argument("--recbole-epochs", type=int, default=20, help="RecBole backbones: max training epochs (early stopping)")
        p.add_argument("--agent-timesteps", type=int, default=60_000, help="bare ppo/a2c/dqn: SB3 training budget")
    train = sub.add_parser("train-agent", help="train a Stable-Baselines3 agent on the env (fitted simulator)")
    train.add_argument("--algo", required=True, choices=list(ALGOS))
    train.add_argument("--timesteps", type=int, default=60_000, help="agent steps (picks, with the scorer policy)")
    train.add_argument("--out", required=True, help="folder for model.zip and card.json")
    train.add_argument("--dataset", default="ml-100k")
    train.add_argument("--feedback-mode", default="feed", choices=["page", "feed"])
    train.add_argument("--action-mode", default="candidates", choices=["catalog", "candidates"])
    train.add_argument("--slate-size", type=int, default=10)
    train.add_argument("--num-candidates", type=int, default=50)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--agent-policy", default="auto", choices=["auto", "scorer", "slate"],
                       help="scorer: pick by pick with a shared candidate scorer (auto in candidates mode); slate: MultiDiscrete")
    _add_train_simulator(sub)
    _add_eval_simulator(sub)
    d = sub.add_parser("distill", help="UserMirrorer distillation: decision processes -> SFT rows and DPO pairs")
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
    g.add_argument("--out", required=True, help="JSON file")
    g.add_argument("--dataset", default="ml-100k")
    g.add_argument("--k", type=int, default=20)
    g.add_argument("--mode", default="interest", choices=["interest", "demographics", "both"])
    g.add_argument("--llm", default=None, help="model[+adapter dir] that writes the group summaries and judges the members "
                   "(default: both measured from the data)")
    g.add_argument("--seed", type=int, default=0)
    demo = sub.choices["demo"]
    demo.add_argument("--llm-users", type=int, default=3, help="users shown with the LLM simulator (0: skip)")
    args = parser.parse_args(argv)
    args.command_line = shlex.join(["recsim", *(argv if argv is not None else sys.argv[1:])])  # re-runnable as shown
    if args.command == "train-agent":
        return cmd_train_agent(args)
    if args.command == "train-simulator":
        return cmd_train_simulator(args)
    if args.command == "eval-simulator":
        return cmd_eval_simulator(args)
    if args.command == "distill":
        return cmd_distill(args)
    if args.command == "pairs":
        return cmd_pairs(args)
    if args.command == "build-groups":
        return cmd_build_groups(args)
    if args.command == "demo":
        for mode in ("feed", "page"):
            print(f"\n== RecSimEnv-v0, ml-100k test users, feedback_mode={mode}, data-fitted simulator ==")
            args.feedback_mode = mode
            cmd_rollout(args)
        if args.llm_users:
            llm_demo(args.llm_users, args.seed)
        return 0
    return cmd_rollout(args)


if __name__ == "__main__":
    sys.exit(main())
