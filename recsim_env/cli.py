"""``recsim`` command line: demo and rollouts of the built-in policies."""

from __future__ import annotations

import argparse
import sys

import gymnasium as gym

import recsim_env  # noqa: F401  (registers RecSimEnv-v0)

__all__ = ["main"]


def _policy(name: str, env: gym.Env, seed: int = 0):
    from agents.heuristics import ContentPolicy, PopularityPolicy, RandomPolicy

    if name == "random":
        return RandomPolicy(env, seed=seed)
    if name == "content":
        return ContentPolicy(env)
    if name.startswith("rerank-"):  # the env's own simulator re-ranks a heuristic backbone
        from agents.rerank import RerankPolicy

        return RerankPolicy(env, _policy(name[len("rerank-"):], env, seed), seed=seed)
    if name in ("popular", "popularity"):
        return PopularityPolicy(env)
    if ":" in name:  # my_module:my_policy
        import importlib

        module, attr = name.split(":", 1)
        return getattr(importlib.import_module(module), attr)
    raise SystemExit(
        f"Unknown policy {name!r}: use random, popular, content, rerank-popular, rerank-content, or module:attribute."
    )


def cmd_rollout(args: argparse.Namespace) -> int:
    from benchmarks.rollout import compare_policies, write_results

    sim_kwargs = {"model": args.simulator_model} if args.simulator == "llm" and args.simulator_model else None

    def env_factory():
        return gym.make(
            "RecSimEnv-v0", dataset=args.dataset, feedback_mode=args.feedback_mode, action_mode=args.action_mode,
            slate_size=args.slate_size, user_split=args.user_split, simulator=args.simulator, simulator_kwargs=sim_kwargs,
        )

    policies = {name: (lambda env, seed, name=name: _policy(name, env, seed)) for name in args.policy.split(",")}
    seeds = list(range(args.seeds))
    results = compare_policies(policies, env_factory, args.episodes, seeds)
    keys = ["return", "session_length", "click_rate", "fast_skip_rate", "total_play_rate", "coverage"]
    print(f"{'policy':<12}" + "".join(f"{k:>17}" for k in keys))
    for name, r in results.items():
        print(f"{name:<12}" + "".join(f"{r['summary'][k][0]:>17.3f}" for k in keys))
    if args.out:
        command = "recsim " + " ".join(sys.argv[1:]) if args.command == "rollout" else "recsim demo"
        write_results(
            results, args.out, command,
            f"RecSimEnv-v0 rollouts ({args.dataset}, {args.feedback_mode} mode, {args.simulator} simulator)",
        )
        print(f"wrote {args.out}/results.{{json,md,png}}")
    return 0


def llm_demo(n_users: int, seed: int) -> None:
    """A few users answer a popularity slate in feed mode, with the LLM simulator and its reasons."""
    from agents.heuristics import PopularityPolicy

    print(f"\n== LLM user simulator (SmolLM2-135M-Instruct, offline, not fine-tuned), feed mode, {n_users} users ==")
    env = gym.make(
        "RecSimEnv-v0", simulator="llm", simulator_kwargs={"explain": "negative"}, feedback_mode="feed",
        slate_size=5, user_split="test",
    )
    core = env.unwrapped
    policy = PopularityPolicy(env)
    for u in range(n_users):
        obs, info = env.reset(seed=seed + u)
        obs, reward, _, _, info = env.step(policy.act(obs, info))
        print(f"\nuser {info['user_id']} ({core.simulator.scenes.user_texts[info['user']]}), reward {reward:.2f}")
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
        p.add_argument("--policy", default="random,popular", help="comma-separated: random, popular, content, rerank-popular, rerank-content, module:attr")
        p.add_argument("--dataset", default="ml-100k")
        p.add_argument("--simulator", default="fitted", choices=["fitted", "llm"], help="user simulator of the env")
        p.add_argument("--simulator-model", default=None, help="llm: model name or checkpoint dir (default smollm2-135m)")
        p.add_argument("--feedback-mode", default="feed", choices=["page", "feed"])
        p.add_argument("--action-mode", default="catalog", choices=["catalog", "candidates"])
        p.add_argument("--slate-size", type=int, default=10)
        p.add_argument("--user-split", default="test", choices=["train", "valid", "test", "all"])
        p.add_argument("--episodes", type=int, default=50, help="episodes per seed")
        p.add_argument("--seeds", type=int, default=1, help="seeds 0..N-1; metrics get 95%% intervals over seeds")
        p.add_argument("--seed", type=int, default=0, help="seed of the LLM demo users")
        p.add_argument("--out", default=None, help="write results.{json,md,png} to this folder")
    demo = sub.choices["demo"]
    demo.add_argument("--llm-users", type=int, default=3, help="users shown with the LLM simulator (0: skip)")
    args = parser.parse_args(argv)
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
