"""``recsim train-agent``: a Stable-Baselines3 agent trained on the env (fitted simulator)."""

from __future__ import annotations

import argparse

import gymnasium as gym

from agents.sb3_agents import ALGOS
from recsim_cli.errors import check_writable
from recsim_cli.rollout import make_env_kwargs

__all__ = ["add_parsers", "cmd_train_agent"]


def cmd_train_agent(args: argparse.Namespace) -> int:
    from agents.rollout import rollout
    from agents.sb3_agents import AgentConfig, SB3Policy, train_agent

    check_writable(args.out)
    env_kwargs = make_env_kwargs(args, training=True)
    config = AgentConfig(algo=args.algo, total_timesteps=args.timesteps, seed=args.seed, env_kwargs=env_kwargs,
                         policy=args.agent_policy)
    train_agent(config, args.out)
    env = gym.make("RecSimEnv-v1", **{**env_kwargs, "user_split": "valid"})
    metrics = rollout(env, SB3Policy.load(args.out).bind(env), episodes=20, seed=10_000, desc="valid users").metrics()
    print(f"saved {args.out}/model.zip; valid users, 20 episodes: return {metrics['return']:.2f}, "
          f"click rate {metrics['click_rate']:.3f}. Evaluate: recsim rollout --policy {args.algo}:{args.out} "
          f"--feedback-mode {args.feedback_mode} --action-mode {args.action_mode}")
    return 0


def add_parsers(sub) -> None:
    train = sub.add_parser("train-agent", help="train a Stable-Baselines3 agent on the env (fitted simulator)")
    train.set_defaults(func=cmd_train_agent)
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
