"""Policy-ranking agreement: does a simulator rank recommender policies the way held-out users' real logs do?

Protocol (after SimUSER's agreement with online A/B tests, rho 0.72; here the "real" side is the offline metric on
held-out logs, the only real-user signal MovieLens has): from each held-out user's start (its first ``n - horizon``
logged interactions as the past, ``reset(options={"user_index", "history_cut"})``), every policy shows its first
slate of ``K`` items (catalog mode). Offline, against the user's next ``horizon`` real items: Recall@K and NDCG@K
(binary relevance). In the simulator, from the same start: one episode per start (seeded), its return and click
rate. Spearman's rho between the policies' offline and simulated means, with a 95% bootstrap interval over users
(each resample recomputes every policy's means on the same users). Policies are trained on the train users only
(RecBole backbones, the PPO agent; heuristics need no training), so the evaluated users' logs never reach them. The PPO
agent ranks the env's 50 candidates (candidates mode: its own env, same simulator and starts); the others pick from
the whole catalogue.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import gymnasium as gym
import numpy as np

from recsim_env.data import Dataset

__all__ = ["RankingConfig", "evaluate", "format_results", "ndcg_at_k", "plot_results", "recall_at_k", "run", "spearman", "starts"]


@dataclass(frozen=True)
class RankingConfig:
    """Which starts and metrics: ``horizon`` next real items per start, ``min_history`` earlier ones, ``max_users``
    held-out users at most (None: all), ``K`` slate size, ``seed`` of the episodes and of the bootstrap."""

    split: str = "test"
    horizon: int = 10
    min_history: int = 10
    max_users: int | None = None
    slate_size: int = 10
    feedback_mode: str = "feed"
    bootstrap: int = 1000
    seed: int = 0


def starts(dataset: Dataset, config: RankingConfig) -> list[tuple[int, int]]:
    """(user, history cut) of each held-out user with at least ``min_history + horizon`` interactions: the past is
    all but its last ``horizon`` items."""
    out = []
    for u in dataset.users(config.split):
        n = int(dataset.user_ptr[u + 1] - dataset.user_ptr[u])
        if n >= config.min_history + config.horizon:
            out.append((int(u), n - config.horizon))
    return out[: config.max_users] if config.max_users else out


def recall_at_k(slate: np.ndarray, relevant: np.ndarray) -> float:
    """Share of the ``relevant`` items that the slate holds."""
    return float(np.isin(relevant, slate).sum() / len(relevant)) if len(relevant) else float("nan")


def ndcg_at_k(slate: np.ndarray, relevant: np.ndarray) -> float:
    """Binary-relevance NDCG of the ordered slate: sum of 1 / log2(rank + 1) over hits, over the ideal's."""
    hits = np.isin(slate, relevant)
    discounts = 1.0 / np.log2(np.arange(2, len(slate) + 2))
    ideal = discounts[: min(len(relevant), len(slate))].sum()
    return float((hits * discounts).sum() / ideal) if ideal > 0 else float("nan")


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation (ties averaged); NaN when either side is constant."""
    from scipy.stats import spearmanr

    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


def evaluate(env: gym.Env, policies: dict, config: RankingConfig, progress: bool = True) -> dict:
    """Per policy and start: offline Recall@K / NDCG@K of its first slate, the simulated episode's return and click
    rate; Spearman's rho of the policies' means with bootstrap intervals over users. A policy is ``act(obs, info)``,
    or ``(act, its_env)`` for one that acts in an env of its own action mode (same simulator, users and starts; e.g.
    a candidates-mode agent; the first slate is read as item indices from ``info["feedback"]["item_id"]``)."""
    from tqdm.auto import tqdm

    ds = env.unwrapped.batch.dataset
    points = starts(ds, config)
    if len(points) < 2:
        raise ValueError(f"Policy ranking needs held-out users with >= {config.min_history + config.horizon} interactions; "
                         f"{ds.name!r} has {len(points)}.")
    names = list(policies)
    per = {k: np.full((len(names), len(points)), np.nan) for k in ("recall", "ndcg", "return", "click_rate")}
    for p, name in enumerate(names):
        act, penv = policies[name] if isinstance(policies[name], tuple) else (policies[name], env)
        for s, (user, cut) in enumerate(tqdm(points, desc=f"policy ranking: {name}", disable=not progress, leave=False)):
            h = ds.history(user)
            relevant = ds.inter_item[h.start + cut : h.stop]
            obs, info = penv.reset(seed=config.seed + s, options={"user_index": user, "history_cut": cut})
            total, clicks, shown, first, done = 0.0, 0, 0, None, False
            while not done:
                slate = np.asarray(act(obs, info))
                obs, reward, terminated, truncated, info = penv.step(slate)
                first = np.asarray(info["feedback"]["item_id"]) if first is None else first
                total += float(reward)
                clicks += int(info["feedback"]["clicked"].sum())
                shown += int(info["feedback"]["played"].sum())
                done = terminated or truncated
            per["recall"][p, s] = recall_at_k(first, relevant)
            per["ndcg"][p, s] = ndcg_at_k(first, relevant)
            per["return"][p, s] = total
            per["click_rate"][p, s] = clicks / max(shown, 1)
    means = {k: v.mean(1) for k, v in per.items()}
    rng = np.random.default_rng([config.seed, 11])
    pairs = [("ndcg", "return"), ("ndcg", "click_rate"), ("recall", "return"), ("recall", "click_rate")]
    rho = {}
    for off, sim in pairs:
        boot = []
        for _ in range(config.bootstrap):
            idx = rng.integers(0, len(points), len(points))
            boot.append(spearman(per[off][:, idx].mean(1), per[sim][:, idx].mean(1)))
        boot = np.array([b for b in boot if np.isfinite(b)])
        rho[f"{off} vs {sim}"] = {"rho": spearman(means[off], means[sim]),
                                  "ci": [float(np.quantile(boot, 0.025)), float(np.quantile(boot, 0.975))] if len(boot) else [float("nan")] * 2}
    return {"config": config.__dict__, "policies": names, "n_starts": len(points),
            "means": {k: dict(zip(names, map(float, v))) for k, v in means.items()}, "rho": rho}


def format_results(results: dict, title: str, command: str) -> str:
    """Markdown: each policy's offline and simulated means, then Spearman's rho per pair, SimUSER's figure beside."""
    m, c = results["means"], results["config"]
    lines = [f"# Policy-ranking agreement: {title}", "", f"Command: `{command}`", "",
             f"{results['n_starts']} held-out {c['split']} users; from each, the past is all but its last {c['horizon']} "
             f"items. Offline: the first slate of {c['slate_size']} against those real next items. Simulated: one "
             f"episode per start. Protocol: `benchmarks/protocols/policy_ranking.py`.", "",
             "| policy | Recall@K (real logs) | NDCG@K (real logs) | return (simulator) | click rate (simulator) |",
             "| --- | ---: | ---: | ---: | ---: |"]
    lines += [f"| {p} | {m['recall'][p]:.4f} | {m['ndcg'][p]:.4f} | {m['return'][p]:.3f} | {m['click_rate'][p]:.3f} |"
              for p in results["policies"]]
    lines += ["", "| agreement | Spearman's rho | 95% interval (bootstrap over users) |", "| --- | ---: | --- |"]
    lines += [f"| {k} | {v['rho']:.3f} | [{v['ci'][0]:.3f}, {v['ci'][1]:.3f}] |" for k, v in results["rho"].items()]
    lines += ["| *published: SimUSER vs online A/B tests (other data, policies and real side)* | 0.72 | |", ""]
    return "\n".join(lines) + "\n"


def plot_results(results: dict, path, simulator: str) -> None:
    """Each policy's offline NDCG@K on the real logs (x) against its click rate and return in the simulator (y)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = results["means"]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8))
    for ax, key in zip(axes, ("click_rate", "return")):
        for p in results["policies"]:
            ax.scatter(m["ndcg"][p], m[key][p])
            ax.annotate(p, (m["ndcg"][p], m[key][p]), fontsize=7, xytext=(3, 3), textcoords="offset points")
        rho = results["rho"][f"ndcg vs {key}"]
        ax.set_title(f"Spearman rho {rho['rho']:.2f} [{rho['ci'][0]:.2f}, {rho['ci'][1]:.2f}]", fontsize=9)
        ax.set_xlabel("NDCG@K on held-out real logs")
        ax.set_ylabel(f"{key.replace('_', ' ')} in the {simulator} simulator")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run(simulator: str, policy_names: Sequence[str], dataset_name: str, config: RankingConfig, out: str | None,
        command: str, recbole_epochs: int = 3, agent_timesteps: int = 60_000) -> dict:
    """Rank the named policies (``recsim rollout --policy`` names) in ``simulator``'s env and on the real logs; write
    ``out.{md,json}``."""
    import recsim_env  # noqa: F401  (registers the env)
    from agents.base import as_policy
    from benchmarks.report import publish
    from recsim_env.data import load_dataset

    ds = load_dataset(dataset_name)
    env = gym.make(recsim_env.ENV_ID, dataset=ds, simulator=simulator, user_split=config.split,
                   feedback_mode=config.feedback_mode, slate_size=config.slate_size)
    policies = {}
    for name in policy_names:
        policy = _policy(name, env, config, recbole_epochs, agent_timesteps)
        policies[name] = (as_policy(policy[0]), policy[1]) if isinstance(policy, tuple) else as_policy(policy)
    results = evaluate(env, policies, config)
    results["command"] = command
    text = format_results(results, f"{simulator} simulator vs held-out real logs ({ds.name})", command)
    return publish(text, results, out, lambda r, path: plot_results(r, path, simulator))


def _policy(name: str, env: gym.Env, config: RankingConfig, recbole_epochs: int, agent_timesteps: int):
    """random, popular, content, ppo, or a RecBole model by its RecBole name (BPR, SASRec, ...): the policies whose
    training never sees the evaluated users (RecBole models and PPO train on the train users, cached). PPO is the
    candidates-mode agent of ``recsim rollout --policy ppo`` (CandidateScorer, ``agent_timesteps`` picks on the
    fitted simulator): it ranks the env's 50 mixed candidates, so it acts in a candidates-mode env of its own (same
    simulator, users and starts) and comes back as ``(policy, env)``."""
    from agents.heuristics import ContentPolicy, PopularityPolicy, RandomPolicy

    heuristics = {"random": lambda: RandomPolicy(env, seed=config.seed), "popular": lambda: PopularityPolicy(env),
                  "content": lambda: ContentPolicy(env)}
    if name in heuristics:
        return heuristics[name]()
    if name == "ppo":
        import recsim_env
        from agents.sb3_agents import SB3Policy, cached_agent

        u = env.unwrapped
        own = gym.make(recsim_env.ENV_ID, dataset=u.batch.dataset, simulator=u.batch.simulator, user_split=config.split,
                       feedback_mode=config.feedback_mode, slate_size=config.slate_size, action_mode="candidates")
        return SB3Policy.load(cached_agent("ppo", agent_timesteps, {"action_mode": "candidates"})).bind(own), own
    from agents.recbole_policy import RecBoleConfig, RecBolePolicy

    return RecBolePolicy.train(name, env.unwrapped.batch.dataset, RecBoleConfig(epochs=recbole_epochs), progress=False).bind(env)
