"""``recsim demo`` and ``recsim rollout``: policies rolled out on RecSimEnv-v1."""

from __future__ import annotations

import argparse
from pathlib import Path

import gymnasium as gym

import recsim_env  # noqa: F401  (registers RecSimEnv-v0 and -v1)
from agents.sb3_agents import ALGOS
from recsim_cli.errors import UsageError, check_writable

__all__ = ["add_env_arguments", "add_parsers", "cmd_demo", "cmd_rollout", "check_policy_name", "make_env_kwargs", "make_policy"]

_TRAINED: dict = {}  # trained backbones / agents, reused across seeds of one command


RECBOLE_NAMES = {"bpr": "BPR", "lightgcn": "LightGCN", "sasrec": "SASRec", "gru4rec": "GRU4Rec", "narm": "NARM"}


def make_policy(name: str, env: gym.Env, seed: int = 0, args: argparse.Namespace | None = None):
    """The policy a ``--policy`` name means, bound to ``env`` (see ``--policy`` help)."""
    from agents.heuristics import ContentPolicy, LogReplayPolicy, PopularityPolicy, RandomPolicy

    if name == "random":
        return RandomPolicy(env, seed=seed)
    if name == "content":
        return ContentPolicy(env)
    if name.startswith("rerank-"):  # the env's own simulator re-ranks a backbone
        from agents.rerank import RerankPolicy

        return RerankPolicy(env, make_policy(name[len("rerank-"):], env, seed, args), seed=seed)
    if name in ("popular", "popularity"):
        return PopularityPolicy(env)
    if name == "log-replay":  # the user's own logged next items
        return LogReplayPolicy(env)
    if name in ("softmax-popular", "softmax-content"):  # stochastic, with propensities (recsim record)
        from agents.heuristics import SoftmaxPolicy

        scorer = PopularityPolicy(env) if name == "softmax-popular" else ContentPolicy(env)
        return SoftmaxPolicy(env, scorer, temperature=getattr(args, "temperature", 1.0), epsilon=getattr(args, "epsilon", 0.0),
                             seed=seed)
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
            return SB3Policy.load(path, deterministic=not getattr(args, "stochastic", False)).bind(env)
        timesteps, env_kwargs = getattr(args, "agent_timesteps", 60_000), make_env_kwargs(args, training=True)
        key = (algo, timesteps, repr(sorted(env_kwargs.items())))
        if key not in _TRAINED:
            _TRAINED[key] = cached_agent(algo, timesteps, env_kwargs)
        return SB3Policy.load(_TRAINED[key]).bind(env)
    if ":" in name:  # my_module:my_policy
        return _external_policy(name)
    raise UsageError(_unknown_policy(name))


def check_policy_name(name: str) -> None:
    """Raise the UsageError ``_policy`` would raise for ``name``, without building anything."""
    base = name[len("rerank-"):] if name.startswith("rerank-") else name
    algo = base.partition(":")[0]
    if base in ("random", "content", "popular", "popularity", "log-replay", "softmax-popular", "softmax-content") or base.lower() in RECBOLE_NAMES or algo in ALGOS or algo == "recbole":
        return
    if ":" in base:
        _external_policy(base)
        return
    raise UsageError(_unknown_policy(name))


def _unknown_policy(name: str) -> str:
    return (f"Unknown policy {name!r}: use random, popular, content, log-replay, softmax-popular, softmax-content, {', '.join(RECBOLE_NAMES)}, recbole:<Model>, "
            f"{', '.join(ALGOS)} (or <algo>:<folder of a saved agent>), rerank-<backbone>, or module:attribute.")


def _external_policy(name: str):
    """The attribute named by ``module:attr`` (a policy class, factory or object), or a UsageError saying what is missing."""
    import importlib

    module, attr = name.split(":", 1)
    try:
        found = importlib.import_module(module)
    except ImportError as err:
        raise UsageError(f"--policy {name!r}: cannot import module {module!r} ({err}).") from None
    if not hasattr(found, attr):
        raise UsageError(f"--policy {name!r}: module {module!r} has no attribute {attr!r}.")
    return getattr(found, attr)


def make_env_kwargs(args: argparse.Namespace | None, training: bool = False) -> dict:
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
    if getattr(args, "simulator_perception", None):  # captions of the items' videos (recsim perceive)
        llm["perception"] = args.simulator_perception
    kwargs = {"dataset": args.dataset, "feedback_mode": args.feedback_mode, "action_mode": args.action_mode,
              "slate_size": args.slate_size, "num_candidates": args.num_candidates,
              "user_split": getattr(args, "user_split", "train"), "simulator": simulator,
              "simulator_kwargs": llm if simulator == "llm" and llm else None}
    if training:
        kwargs |= {"simulator": "fitted", "simulator_kwargs": None, "user_split": "train"}
    return kwargs


def cmd_rollout(args: argparse.Namespace) -> int:
    from benchmarks.rollout import compare_policies, write_results

    if args.episodes < 1 or args.seeds < 1:
        raise UsageError(f"--episodes and --seeds must be >= 1, got --episodes {args.episodes} --seeds {args.seeds}.")
    names = [n.strip() for n in args.policy.split(",")]
    if "" in names or len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise UsageError(f"--policy {args.policy!r}: " + (f"lists {twice} more than once" if twice else "has an empty name")
                         + "; give each policy once, comma-separated.")
    for name in names:  # every policy name is checked before any policy runs
        check_policy_name(name)
    if args.out:
        check_writable(args.out)

    def env_factory():
        return gym.make(args.env, **make_env_kwargs(args))

    env_factory().close()  # bad env arguments fail here, before any policy is trained
    policies = {name: (lambda env, seed, name=name: make_policy(name, env, seed, args)) for name in names}
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
            f"{args.env} rollouts ({args.dataset}, {args.feedback_mode} mode, {args.simulator} simulator)",
        )
        print(f"wrote {args.out}/results.{{json,md,png}}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    for mode in ("feed", "page"):
        print(f"\n== {args.env}, ml-100k test users, feedback_mode={mode}, data-fitted simulator ==")
        args.feedback_mode = mode
        cmd_rollout(args)
    if args.llm_users:
        llm_demo(args.llm_users, args.seed)
    return 0


def add_env_arguments(p: argparse.ArgumentParser) -> None:
    """The env a command runs (rollout, demo, record)."""
    p.add_argument("--env", default=recsim_env.ENV_ID, choices=["RecSimEnv-v1", "RecSimEnv-v0"],
                   help="v1: sessions end by the leaving model fitted on real sessions; v0: when patience is spent")
    p.add_argument("--dataset", default="ml-100k")
    p.add_argument("--simulator", default="fitted", choices=["fitted", "llm"], help="user simulator of the env")
    p.add_argument("--simulator-model", default=None, help="llm: model name or checkpoint dir (default smollm2-135m)")
    p.add_argument("--simulator-adapter", default=None,
                   help="llm: adapter dir or shipped name; 'none' = the base model (e.g. smollm2-135m-ml100k-sgrpo, the SFT+S-GRPO adapter)")
    p.add_argument("--simulator-heads", default=None,
                   help="llm: decision-heads dir or shipped name; 'none' = the answer letters decide (default on ml-100k: "
                        "the shipped heads, unless --simulator-adapter is given)")
    p.add_argument("--simulator-perception", default=None,
                   help="llm: a `recsim perceive` output folder: item lines carry their video captions")
    p.add_argument("--feedback-mode", default="feed", choices=["page", "feed"])
    p.add_argument("--action-mode", default="catalog", choices=["catalog", "candidates"])
    p.add_argument("--slate-size", type=int, default=10)
    p.add_argument("--num-candidates", type=int, default=50, help="candidates mode: items offered per step")
    p.add_argument("--user-split", default="test", choices=["train", "valid", "test", "all"])


def add_parsers(sub) -> None:
    for name, help_, func in (("demo", "random vs popularity on ml-100k, both feedback modes", cmd_demo),
                              ("rollout", "roll out policies", cmd_rollout)):
        p = sub.add_parser(name, help=help_)
        p.set_defaults(func=func)
        p.add_argument("--policy", default="random,popular", help="comma-separated: random, popular, content, log-replay (the user's logged next items), softmax-popular, softmax-content (stochastic), bpr, lightgcn, sasrec, gru4rec, narm, recbole:<Model>, ppo, a2c, dqn, maskable_ppo, <algo>:<agent folder>, rerank-<backbone>, module:attr")
        add_env_arguments(p)
        p.add_argument("--episodes", type=int, default=50, help="episodes per seed")
        p.add_argument("--seeds", type=int, default=1, help="seeds 0..N-1; metrics get 95%% intervals over seeds")
        p.add_argument("--seed", type=int, default=0, help="seed of the LLM demo users")
        p.add_argument("--out", default=None, help="write results.{json,md,png} to this folder")
        p.add_argument("--recbole-epochs", type=int, default=20, help="RecBole backbones: max training epochs (early stopping)")
        p.add_argument("--agent-timesteps", type=int, default=60_000, help="bare ppo/a2c/dqn: SB3 training budget")
    sub.choices["demo"].add_argument("--llm-users", type=int, default=3, help="users shown with the LLM simulator (0: skip)")


def llm_demo(n_users: int, seed: int) -> None:
    """A few users answer a popularity slate in feed mode, with the LLM simulator and its reasons."""
    from agents.heuristics import PopularityPolicy

    env = gym.make(
        "RecSimEnv-v1", simulator="llm", simulator_kwargs={"explain": "negative"}, feedback_mode="feed",
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
        fb = info["feedback"]
        for k, p_skip in enumerate(info["skip_probs"]):
            title = core.simulator.scenes.item_texts[fb["item_id"][k]].split(" (")[0]
            if not fb["played"][k]:
                print(f"  {title[:38]:<38} P(skip)={p_skip:.2f} -> not seen (the user left before it)")
                continue
            verdict = (f"skips ({fb['reason_class'][k] or 'low rating'})" if fb["skipped"][k]
                       else f"watches, rates {fb['rating'][k]:.0f}")
            print(f"  {title[:38]:<38} P(skip)={p_skip:.2f} -> {verdict}")
            if fb["reason_text"][k]:
                print(f"      \"{fb['reason_text'][k][:100]}\"")
        if info["simulator_errors"]:
            print(f"  ({info['simulator_errors']} unusable model answers; see simulators/llm/simulator.py)")
