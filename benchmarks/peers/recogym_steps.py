"""RecoGym 0.1.3.0 reco-gym-v1 env-steps per CPU-second with random recommendations (run in the recogym peer venv).

An episode starts with ``step(None)`` (RecoGym's protocol: it returns the user's first organic sessions); those calls
count as steps too (the generous reading for the peer)."""

import argparse
import json
import time

import gym
import numpy as np
from recogym import env_1_args

parser = argparse.ArgumentParser()
parser.add_argument("--seconds", type=float, default=2.0)
parser.add_argument("--num-products", type=int, default=1682)
args = parser.parse_args()
config = {**env_1_args, "num_products": args.num_products, "random_seed": 0}
env = gym.make("reco-gym-v1", disable_env_checker=True)
env.unwrapped.init_gym(config)
rng = np.random.default_rng(0)
env.reset()
env.step(None)
warm = time.process_time()
while time.process_time() - warm < 0.5:  # warm-up, untimed (RecoGym compiles numba functions first)
    _, _, done, _ = env.step(int(rng.integers(args.num_products)))
    if done:
        env.reset()
        env.step(None)
steps = episodes = 0
start = time.process_time()
while time.process_time() - start < args.seconds:
    _, _, done, _ = env.step(int(rng.integers(args.num_products)))
    steps += 1
    if done:
        env.reset()
        env.step(None)
        steps += 1
        episodes += 1
cpu = time.process_time() - start
print(json.dumps({"steps": steps, "cpu_seconds": cpu, "episodes": episodes,
                  "config": {"num_products": args.num_products, "random_seed": 0}}))
