"""Rollout metrics of recommender policies on RecSimEnv-v0, with 95% confidence intervals over seeds.

Definitions (G-UBS's where it defines them; "played" = items the user started: the clicked item in
page mode, every shown item in feed mode):

* return: mean over episodes of the summed reward.
* click_rate: clicked items / shown items.
* fast_skip_rate: fast-skipped items (watch ratio < 0.3) / played items.
* person_play_rate (G-UBS Person Play Rate): mean over sessions (one user each) of the session's
  mean watch ratio; sessions with no played item are left out.
* total_play_rate (G-UBS Total Play Rate): total watched fraction / number of played items, i.e.
  total play time over total duration with every item's duration taken as 1 (MovieLens has none).
* finish_rate (G-UBS Finish Rate): played items with watch ratio > 0.9 / played items.
* play_rate_30 (G-UBS Play Rate > 30%): played items with watch ratio > 0.3 / played items.
* session_length: mean steps per episode.
* repeat_rate: shown items that were already consumed or duplicated in their slate / shown items.
* coverage: distinct items shown over all episodes / catalogue size.
* intra_list_diversity: mean over slates of the mean over item pairs of 1 - cosine similarity of
  their text/genre vectors (items without text count as dissimilar).
* novelty: mean over shown items of -log2 p(item), p = (train count + 1) / (train interactions + n_items).

Watch-ratio metrics use played items whose ratio is known. Each metric's mean over seeds comes
with the half-width of a 95% Student-t interval (NaN for a single seed).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

__all__ = ["METRICS", "compare_policies", "rollout_metrics", "summarize", "write_results"]

METRICS = (
    "return", "click_rate", "fast_skip_rate", "person_play_rate", "total_play_rate", "finish_rate", "play_rate_30",
    "session_length", "repeat_rate", "coverage", "intra_list_diversity", "novelty",
)


def _ratio(num: float, den: float) -> float:
    return float(num) / den if den else float("nan")


def rollout_metrics(episodes: Sequence, features) -> dict[str, float]:
    """The metrics above for a list of :class:`agents.base.EpisodeStats` (``features``: ItemFeatures)."""
    shown = sum(e.shown for e in episodes)
    played = sum(e.played for e in episodes)
    watch = np.array([w for e in episodes for w in e.watch], dtype=np.float64)
    per_session = [float(np.mean(e.watch)) for e in episodes if e.watch]
    slates = [np.asarray(s, dtype=np.int64) for e in episodes for s in e.slates if len(s)]
    items = np.concatenate(slates) if slates else np.zeros(0, np.int64)
    n_items = len(features.count)
    p = (features.count + 1.0) / (features.count.sum() + n_items)
    diversity = []
    for s in slates:
        if len(s) < 2:
            continue
        vec = features.text[s].astype(np.float64)
        sim = vec @ vec.T
        iu = np.triu_indices(len(s), 1)
        diversity.append(float(np.mean(1.0 - sim[iu])))
    return {
        "episodes": float(len(episodes)),
        "return": float(np.mean([e.ret for e in episodes])) if episodes else float("nan"),
        "click_rate": _ratio(sum(e.clicks for e in episodes), shown),
        "fast_skip_rate": _ratio(sum(e.skips for e in episodes), played),
        "person_play_rate": float(np.mean(per_session)) if per_session else float("nan"),
        "total_play_rate": _ratio(watch.sum(), len(watch)),
        "finish_rate": _ratio((watch > 0.9).sum(), len(watch)),
        "play_rate_30": _ratio((watch > 0.3).sum(), len(watch)),
        "session_length": float(np.mean([e.length for e in episodes])) if episodes else float("nan"),
        "repeat_rate": _ratio(sum(e.repeats for e in episodes), shown),
        "coverage": _ratio(len(np.unique(items)), n_items),
        "intra_list_diversity": float(np.mean(diversity)) if diversity else float("nan"),
        "novelty": float(np.mean(-np.log2(p[items]))) if len(items) else float("nan"),
    }


def summarize(per_seed: Sequence[dict[str, float]]) -> dict[str, tuple[float, float]]:
    """metric -> (mean over seeds, half-width of the 95% Student-t interval)."""
    from scipy.stats import t

    n = len(per_seed)
    out = {}
    for key in METRICS:
        values = np.array([m[key] for m in per_seed], dtype=np.float64)
        mean = float(np.mean(values))
        half = float(t.ppf(0.975, n - 1) * values.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
        out[key] = (mean, half)
    return out


def compare_policies(
    policies: dict[str, Callable], env_factory: Callable, episodes: int, seeds: Sequence[int], progress: bool = True,
) -> dict[str, dict]:
    """Roll out every policy for ``episodes`` episodes per seed; ``policies[name](env, seed)`` builds a policy."""
    from agents.base import rollout

    results = {}
    for name, make_policy in policies.items():
        per_seed = []
        for seed in seeds:
            env = env_factory()
            # seeds are spaced so that their episodes' reset seeds never overlap
            res = rollout(env, make_policy(env, seed), episodes=episodes, seed=seed * 100_000, progress=progress, desc=f"{name} seed {seed}")
            per_seed.append(res.metrics())
        results[name] = {"per_seed": per_seed, "summary": summarize(per_seed)}
    return results


def write_results(results: dict[str, dict], out_dir: str | Path, command: str, title: str) -> str:
    """Write results.json, results.md and results.png under ``out_dir``; return the Markdown table."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({"command": command, "results": results}, indent=2))
    header = "| policy | " + " | ".join(METRICS) + " |"
    lines = [f"# {title}", "", f"Command: `{command}`", "", "Mean over seeds +- half-width of the 95% interval.", "",
             header, "| --- |" + " ---: |" * len(METRICS)]
    for name, r in results.items():
        cells = [f"{m:.3f} +- {h:.3f}" if np.isfinite(h) else f"{m:.3f}" for m, h in (r["summary"][k] for k in METRICS)]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    (out / "results.md").write_text(text)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = ("return", "click_rate", "fast_skip_rate", "total_play_rate", "coverage", "novelty")
    fig, axes = plt.subplots(1, len(shown), figsize=(3 * len(shown), 3.2))
    names = list(results)
    for ax, key in zip(axes, shown):
        means = [results[n]["summary"][key][0] for n in names]
        errs = [np.nan_to_num(results[n]["summary"][key][1]) for n in names]
        ax.bar(names, means, yerr=errs, capsize=3, color=[f"C{i}" for i in range(len(names))])
        ax.set_title(key)
        ax.tick_params(axis="x", rotation=45)
    fig.tight_layout()
    fig.savefig(out / "results.png", dpi=110)
    plt.close(fig)
    return text
