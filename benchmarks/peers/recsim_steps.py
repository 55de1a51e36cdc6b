"""RecSim 0.2.4 interest_evolution env-steps per CPU-second with random slates (run in the recsim peer venv)."""

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
from recsim.environments import interest_evolution

parser = argparse.ArgumentParser()
parser.add_argument("--seconds", type=float, default=2.0)
parser.add_argument("--num-candidates", type=int, default=10)
parser.add_argument("--slate-size", type=int, default=2)
args = parser.parse_args()
config = {"num_candidates": args.num_candidates, "slate_size": args.slate_size, "resample_documents": True, "seed": 0}
env = interest_evolution.create_environment(config)
rng = np.random.default_rng(0)
env.reset()
warm = time.process_time()
while time.process_time() - warm < 0.5:  # warm-up, untimed
    _, _, done, _ = env.step(list(rng.choice(args.num_candidates, args.slate_size, replace=False)))
    if done:
        env.reset()
steps = episodes = 0
start = time.process_time()
while time.process_time() - start < args.seconds:
    slate = rng.choice(args.num_candidates, args.slate_size, replace=False)
    _, _, done, _ = env.step(list(slate))
    steps += 1
    if done:
        env.reset()
        episodes += 1
cpu = time.process_time() - start
print(json.dumps({"steps": steps, "cpu_seconds": cpu, "episodes": episodes, "config": config}))
