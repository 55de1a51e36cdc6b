"""RLlib PPO (new API stack) on RecSimEnv-v1 with 2 env runners, Ray kept on loopback.

Needs an environment with ``ray[rllib]`` (``make rllib-venv`` builds ``.venv-rllib``: ray 2.60 pins gymnasium 1.2.2,
so it does not share the main virtualenv). RecSimEnv's Dict observation goes through RLlib's own
``FlattenObservations`` connector; nothing else is needed.

Run: ``.venv-rllib/bin/python examples/rllib_ppo.py --iterations 2``.
"""

from __future__ import annotations

import argparse
import os


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--iterations", type=int, default=2)
    p.add_argument("--env-runners", type=int, default=2)
    p.add_argument("--batch", type=int, default=256, help="train batch per learner (env steps)")
    args = p.parse_args(argv)

    # Ray stays on this machine's loopback: no dashboard, no usage report, no cluster outside it.
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    import ray
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.connectors.env_to_module import FlattenObservations

    ray.init(num_cpus=max(2, args.env_runners), include_dashboard=False, _node_ip_address="127.0.0.1",
             log_to_driver=False, ignore_reinit_error=True)
    try:
        config = (
            PPOConfig()
            .environment("recsim_env:RecSimEnv-v1", env_config={"action_mode": "candidates", "num_candidates": 20,
                                                                "slate_size": 5, "max_episode_steps": 20})
            .env_runners(num_env_runners=args.env_runners, num_envs_per_env_runner=1,
                         env_to_module_connector=lambda env, spaces=None, device=None: FlattenObservations())
            .training(train_batch_size_per_learner=args.batch, minibatch_size=64, num_epochs=1, lr=3e-4)
        )
        algo = config.build_algo()
        result = {}
        for i in range(args.iterations):
            result = algo.train()
            runners = result.get("env_runners", {})
            print(f"iteration {i + 1}: env steps {runners.get('num_env_steps_sampled_lifetime')}, "
                  f"episode return mean {runners.get('episode_return_mean')}")
        algo.stop()
        return result
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
