"""Policies compared on RecSimEnv-v1 over seeds: each metric of ``agents.rollout`` (definitions there) as its mean
over seeds with the half-width of a 95% Student-t interval (NaN for a single seed); results as JSON, Markdown, PNG."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from agents.rollout import METRICS, rollout

__all__ = ["compare_policies", "summarize", "write_results"]


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


def print_summary(results: dict[str, dict]) -> None:
    """One line per policy of :func:`compare_policies`' results: mean return, click rate and session length."""
    for name, r in results.items():
        m = {k: v[0] for k, v in r["summary"].items()}
        print(f"{name:22s} return {m['return']:7.2f}  click rate {m['click_rate']:.3f}  session length {m['session_length']:.1f}")


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
