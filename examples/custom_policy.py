"""Plug your own recommender policy into RecSimEnv-v1 and compare it with the built-in ones.

A policy is any object with ``act(observation, info) -> slate`` (or a plain function ``observation -> slate``). This
one ranks the catalogue by how well each item matches the user's taste profile (the observation's ``profile``, over
the same vocabulary as the item features), never repeats what the user consumed, and fills the slate with the best.

Run: ``python examples/custom_policy.py --episodes 20``.
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np

import recsim_env  # noqa: F401  (registers RecSimEnv-v0 and -v1)
from agents.heuristics import RandomPolicy
from benchmarks.rollout import compare_policies, print_summary


class TasteMatch:
    """Top-K items by profile . item features, consumed items excluded."""

    def __init__(self, env: gym.Env) -> None:
        self.items = np.asarray(env.unwrapped.batch.features.text, dtype=np.float64)  # (n_items, vocabulary)
        self.k = len(env.action_space.nvec)

    def act(self, observation: dict, info: dict) -> np.ndarray:
        score = self.items @ observation["profile"]
        score[observation["consumed"].astype(bool)] = -np.inf
        return np.argsort(-score, kind="stable")[: self.k]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--episodes", type=int, default=20)
    p.add_argument("--feedback-mode", default="page", choices=["page", "feed"])
    args = p.parse_args(argv)
    make_env = lambda: gym.make("RecSimEnv-v1", feedback_mode=args.feedback_mode, user_split="test")  # noqa: E731
    policies = {"random": lambda env, seed: RandomPolicy(env, seed), "taste match (yours)": lambda env, seed: TasteMatch(env)}
    print_summary(compare_policies(policies, make_env, args.episodes, seeds=[0], progress=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
