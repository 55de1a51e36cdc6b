"""The language-model user in the env's seat: SmolLM2-135M-Instruct (shipped in a wheel, offline) with the decision
heads trained in this repository, answering a popularity recommender in feed mode, beside the data-fitted user on the
same users and seeds.

Each step prints what the LLM user did with each item (watched / skipped / not seen because it left) with its
P(skip), and the reasons in words it gave for skips. The first call loads and caches the model (~20 s).

Run: ``python examples/llm_user.py --users 3`` (``--model DIR`` puts any causal LM checkpoint in the seat instead; the
shipped heads belong to the default model, so another model answers with its own letters).
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np

import recsim_env  # noqa: F401  (registers RecSimEnv-v0 and -v1)
from agents.heuristics import PopularityPolicy


def episode(env: gym.Env, seed: int, verbose: bool) -> float:
    policy = PopularityPolicy(env)
    obs, info = env.reset(seed=seed)
    total, titles = 0.0, env.unwrapped.dataset.item_fields.get("movie_title")
    while True:
        obs, reward, term, trunc, info = env.step(policy.act(obs, info))
        total += reward
        fb = info["feedback"]
        if verbose:
            print(f"  step {int(obs['step'][0])}: reward {reward:.2f}")
            for k, item in enumerate(fb["item_id"]):
                name = " ".join(map(str, titles[item])) if titles is not None else str(item)
                what = ("not seen (left)" if not fb["played"][k] else
                        "skipped" if fb["skipped"][k] else f"watched {fb['watch_ratio'][k]:.2f}")
                print(f"    {name[:36]:<36} P(skip)={info['skip_probs'][k]:.2f}  {what}"
                      + (f'  "{fb["reason_text"][k][:80]}"' if fb["reason_text"][k] else ""))
        if term or trunc:
            return total


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--users", type=int, default=3)
    p.add_argument("--slate-size", type=int, default=5)
    p.add_argument("--max-steps", type=int, default=3, help="steps shown per user")
    p.add_argument("--model", default=None, help="a checkpoint directory or model name (default: SmolLM2-135M-Instruct)")
    args = p.parse_args(argv)
    kw = dict(feedback_mode="feed", slate_size=args.slate_size, user_split="test", max_episode_steps=args.max_steps)
    llm_kwargs = {"explain": "negative"} | ({"model": args.model, "dtype": "float32"} if args.model else {})
    llm = gym.make("RecSimEnv-v1", simulator="llm", simulator_kwargs=llm_kwargs, **kw)
    fitted = gym.make("RecSimEnv-v1", simulator="fitted", **kw)
    returns = {"llm": [], "fitted": []}
    for u in range(args.users):
        print(f"user seed {u} (LLM user):")
        returns["llm"].append(episode(llm, u, verbose=True))
        returns["fitted"].append(episode(fitted, u, verbose=False))
    for name, r in returns.items():
        print(f"{name:<7} mean return {np.mean(r):.3f} over {len(r)} users")
    llm.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
