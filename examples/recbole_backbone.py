"""A RecBole backbone as the recommender: train SASRec (or any RecBole model) on the env's train users with RecBole's
own trainer, then let it recommend to held-out test users in RecSimEnv-v1, beside popularity and random.

The model reads each user's memory in the observation (``history_items``) as its item sequence; the weights are cached
(``$RECSIM_CACHE/recbole``), so a second run loads them.

Run: ``python examples/recbole_backbone.py --model SASRec --epochs 20 --episodes 30``.
"""

from __future__ import annotations

import argparse

import gymnasium as gym

import recsim_env  # noqa: F401  (registers RecSimEnv-v0 and -v1)
from agents.heuristics import PopularityPolicy, RandomPolicy
from agents.recbole_policy import RecBoleConfig, RecBolePolicy
from benchmarks.rollout import compare_policies, print_summary


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="SASRec", help="a RecBole model name: SASRec, GRU4Rec, NARM, BPR, LightGCN, ...")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--episodes", type=int, default=30)
    args = p.parse_args(argv)
    backbone = RecBolePolicy.train(args.model, config=RecBoleConfig(epochs=args.epochs), progress=False, verbose=False)
    policies = {"random": lambda env, seed: RandomPolicy(env, seed), "popularity": lambda env, seed: PopularityPolicy(env),
                f"RecBole {args.model}": lambda env, seed: backbone.bind(env)}
    make_env = lambda: gym.make("RecSimEnv-v1", user_split="test")  # noqa: E731
    print_summary(compare_policies(policies, make_env, args.episodes, seeds=[0], progress=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
