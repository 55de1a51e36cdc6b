"""Record a stochastic recommender's episodes as a Minari dataset, load it back, and estimate another policy's value
from the log alone (IPS / SNIPS), beside that policy's true value rolled out in the env.

The logging policy draws slates from a softmax over popularity with epsilon exploration, so every logged step
carries the propensity of the slate it showed (``infos["log_propensity"]``); the target is a sharper softmax over
the user's taste profile. The same as ``recsim record --policy softmax-popular ...`` on the command line.

Run: ``python examples/minari_ope.py --episodes 500`` (datasets go to ``$MINARI_DATASETS_PATH``, default
``~/.minari/datasets``; ``--dataset-id`` names the dataset, an existing id is refused).
"""

from __future__ import annotations

import argparse
import warnings

import gymnasium as gym

import recsim_env  # noqa: F401  (registers RecSimEnv-v0 and -v1)
from agents.heuristics import ContentPolicy, PopularityPolicy, SoftmaxPolicy
from agents.record import record_dataset
from benchmarks.ope import ENV_KWARGS, estimate, load_logged, true_value


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--episodes", type=int, default=500)
    p.add_argument("--dataset-id", default="recsim/ml100k-softmax-popular-v0")
    args = p.parse_args(argv)
    import minari

    warnings.filterwarnings("ignore", module="minari")
    env = gym.make("RecSimEnv-v1", **ENV_KWARGS)
    logger = SoftmaxPolicy(env, PopularityPolicy(env), temperature=1.0, epsilon=0.1, seed=0)
    record_dataset(env, logger, args.episodes, args.dataset_id, progress=False)
    dataset = minari.load_dataset(args.dataset_id)
    print(f"logged {dataset.total_episodes} episodes, {dataset.total_steps} steps -> {args.dataset_id}")

    target = SoftmaxPolicy(env, ContentPolicy(env), temperature=0.1, epsilon=0.1, seed=1)
    est = estimate(load_logged(dataset), target)
    truth = true_value(env, target, args.episodes, seed=10**6)
    print(f"target: softmax over taste (T=0.1, eps=0.1), first-slate reward")
    print(f"  IPS    {est['ips_first']:.3f}  95% [{est['ips_first_ci'][0]:.3f}, {est['ips_first_ci'][1]:.3f}]")
    print(f"  SNIPS  {est['snips_first']:.3f}  95% [{est['snips_first_ci'][0]:.3f}, {est['snips_first_ci'][1]:.3f}]")
    print(f"  naive  {est['naive_first']:.3f}  (the logger's own mean)")
    print(f"  true   {truth['first']:.3f}  95% [{truth['first_ci'][0]:.3f}, {truth['first_ci'][1]:.3f}]  (on-policy rollouts)")
    print(f"  effective sample size {est['ess_first']:.0f} of {est['episodes']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
