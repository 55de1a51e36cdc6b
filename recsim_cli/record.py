"""``recsim record``: episodes of any policy written as a Minari dataset, with the shown slates' propensities."""

from __future__ import annotations

import argparse

import gymnasium as gym

from recsim_cli.errors import UsageError
from recsim_cli.rollout import check_policy_name, add_env_arguments, make_env_kwargs, make_policy

__all__ = ["add_parsers", "cmd_record"]


def cmd_record(args: argparse.Namespace) -> int:
    from agents.record import record_dataset

    if args.episodes < 1:
        raise UsageError(f"--episodes must be >= 1, got {args.episodes}.")
    if args.temperature <= 0 or not 0 <= args.epsilon <= 1:
        raise UsageError(f"--temperature must be > 0 and --epsilon in [0, 1], got {args.temperature}, {args.epsilon}.")
    check_policy_name(args.policy)
    env = gym.make(args.env, **make_env_kwargs(args))
    policy = make_policy(args.policy, env, args.seed, args)
    try:
        dataset = record_dataset(env, policy, args.episodes, args.dataset_id, seed=args.seed, data_format=args.data_format,
                                 algorithm_name=args.policy, description=f"Recorded by: {args.command_line}")
    except FileExistsError as err:
        raise UsageError(str(err)) from None
    has = "with" if hasattr(policy, "log_propensity") else "WITHOUT (this policy gives none)"
    print(f"wrote Minari dataset {args.dataset_id}: {dataset.total_episodes} episodes, {dataset.total_steps} steps, "
          f"{has} propensities ({args.data_format}); load it with minari.load_dataset({args.dataset_id!r})")
    return 0


def add_parsers(sub) -> None:
    p = sub.add_parser("record", help="record a policy's episodes as a Minari dataset (offline RL, off-policy evaluation)")
    p.set_defaults(func=cmd_record)
    p.add_argument("--policy", default="softmax-popular",
                   help="any --policy of `recsim rollout`; softmax-popular / softmax-content are stochastic with propensities")
    p.add_argument("--episodes", type=int, default=100)
    p.add_argument("--dataset-id", required=True, help="Minari id, e.g. recsim/ml100k-softmax-popular-v0")
    p.add_argument("--data-format", default="hdf5", choices=["hdf5", "arrow"])
    p.add_argument("--seed", type=int, default=0, help="episode i is reset with seed + i")
    p.add_argument("--temperature", type=float, default=1.0, help="softmax-*: temperature of the scores")
    p.add_argument("--epsilon", type=float, default=0.1, help="softmax-*: share of uniform exploration")
    p.add_argument("--stochastic", action="store_true", help="<algo>:<folder>: sample the agent's actions (propensities)")
    add_env_arguments(p)
