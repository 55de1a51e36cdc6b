"""Agent4Rec's like / dislike protocol at 1:1, 1:3 and 1:9, and rating error, as the papers measure them.

Protocol (Agent4Rec; SimUSER and AlignUSER report its 1:1 setting on MovieLens): per held-out user, its last
``positives`` real interactions are held out of the memory and mixed with ``ratio`` times as many items the user never
interacted with, shown as one shuffled feed (:func:`benchmarks.fidelity.like_requests`); the simulator "likes" an item
when its P(fast skip) < 0.5. Reported per ratio: accuracy, precision, recall and F1 of "like" (a real item is a like),
and ROC AUC (threshold-free), with 95% bootstrap intervals over users for accuracy, F1 and AUC.

Ratings: for each held-out real item with a real rating, the simulator's expected rating if the user watches it
(``expected_ratings``), against the real rating: RMSE and MAE. Baselines: the train users' global mean rating and each
item's smoothed train mean rating (the "mean-rating" rows), which any simulator's rating head has to beat; 95%
bootstrap intervals over users.

Published figures sit in the column of the protocol that produced them, as quoted in issue 24 (different data splits
and models): 1:1 on MovieLens Agent4Rec 0.691, SimUSER 0.791, AlignUSER 0.832 (ENF and VRAgent-R1 report 0.815
accuracy, 0.808 F1 on the Agent4Rec protocol, ratio not quoted: shown in the 1:1 row); rating RMSE Agent4Rec 0.76, SimUSER
0.50, AlignUSER 0.43; Lusifer on ml-100k RMSE 1.19 against collaborative filtering's 1.05.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from benchmarks.fidelity import Contender, FidelityConfig, binary_cis, binary_metrics, bootstrap_ci, like_requests
from recsim_env.data import Dataset
from recsim_env.features import item_features

__all__ = ["PUBLISHED", "RATIOS", "evaluate", "format_results", "mean_rating_contenders", "plot_results", "rating_metrics", "run"]

RATIOS = (1, 3, 9)
PUBLISHED = {
    "like 1:1": "Agent4Rec 0.691, SimUSER 0.791, AlignUSER 0.832 (MovieLens, as quoted in issue 24); ENF / VRAgent-R1 "
                "0.815 (F1 0.808; ratio not quoted)",
    "rating RMSE": "Agent4Rec 0.76 (as quoted), SimUSER 0.50, AlignUSER 0.43; Lusifer (ml-100k) 1.19 vs CF 1.05",
}


def rating_metrics(predicted: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """RMSE and MAE of ``predicted`` against ``truth`` ratings, over the pairs where both are known."""
    predicted, truth = np.asarray(predicted, np.float64), np.asarray(truth, np.float64)
    ok = np.isfinite(predicted) & np.isfinite(truth)
    if not ok.any():
        return {"rmse": float("nan"), "mae": float("nan"), "n": 0.0}
    err = predicted[ok] - truth[ok]
    return {"rmse": float(np.sqrt(np.mean(err**2))), "mae": float(np.mean(np.abs(err))), "n": float(ok.sum())}


def mean_rating_contenders(dataset: Dataset) -> list[Contender]:
    """The rating baselines: the train users' global mean rating, and each item's smoothed train mean rating."""
    lo, hi = dataset.rating_range or (np.nan, np.nan)
    train = dataset.interactions_of("train")
    ratings = dataset.inter_rating[train]
    glob = float(np.nanmean(ratings)) if dataset.has_ratings else np.nan
    item = lo + item_features(dataset).mean_rating.astype(np.float64) * (hi - lo)
    return [Contender("mean rating (train users)", ratings=lambda reqs: [np.full(len(r.slate), glob) for r in reqs]),
            Contender("item mean rating (train users, smoothed)", ratings=lambda reqs: [item[r.slate] for r in reqs])]


def evaluate(dataset: Dataset, contenders: Sequence[Contender], config: FidelityConfig | None = None,
             ratios: Sequence[int] = RATIOS) -> dict:
    """``{"config", "ratios", "rows": {contender: {"like 1:r": metrics, "rating": metrics}}}`` on the same seeded
    scenes for every contender."""
    c = config or FidelityConfig()
    scenes = {r: like_requests(dataset, c.split, c.like_positives, c.memory, c.min_history, c.seed, ratio=r) for r in ratios}
    rows: dict = {}
    for contender in contenders:
        row: dict = {}
        for r, (reqs, truth) in scenes.items():
            t = np.concatenate(truth)
            users = np.concatenate([[q.user] * len(q.slate) for q in reqs])
            if contender.skip is not None:
                p = np.concatenate(contender.skip(reqs))
                row[f"like 1:{r}"] = binary_cis(binary_metrics(p < 0.5, t, scores=1.0 - p), p < 0.5, t, 1.0 - p, users)
            if contender.ratings is not None and r == ratios[0]:  # ratings: the held-out real items (same for any ratio)
                real = np.concatenate(truth)
                pred = np.concatenate(contender.ratings(reqs))[real]
                rated = _real_ratings(dataset, reqs, truth)
                m = rating_metrics(pred, rated)
                for key in ("rmse", "mae"):
                    m[f"{key}_ci"] = bootstrap_ci(lambda i: rating_metrics(pred[i], rated[i])[key], users[real])
                row["rating"] = m
        rows[contender.name] = row
    return {"config": {**c.__dict__, "negatives": list(c.negatives)}, "ratios": list(ratios), "rows": rows,
            "scenes": {f"1:{r}": {"users": len(reqs), "items": int(sum(len(q.slate) for q in reqs))} for r, (reqs, _) in scenes.items()}}


def _real_ratings(dataset: Dataset, requests, truth) -> np.ndarray:
    """The real ratings of each request's held-out real items, in slate order."""
    out = []
    for q, t in zip(requests, truth):
        h = dataset.history(q.user)
        items, ratings = dataset.inter_item[h], dataset.inter_rating[h]
        held = dict(zip(items[-int(t.sum()):].tolist(), ratings[-int(t.sum()):].tolist()))
        out.extend(held[int(i)] for i in np.asarray(q.slate)[t])
    return np.array(out, np.float64)


def format_results(results: dict, dataset: str, command: str) -> str:
    """Markdown: one like / dislike table per ratio, the rating table, published figures in their protocol's column."""
    rows, ratios = results["rows"], results["ratios"]

    def cell(m, key):
        if m is None or key not in m or not np.isfinite(m[key]):
            return "-"
        ci = m.get(f"{key}_ci")
        return f"{m[key]:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]" if ci is not None and np.isfinite(ci[0]) else f"{m[key]:.3f}"

    cfg = results["config"]
    lines = [f"# Agent4Rec protocol on held-out {cfg['split']} users ({dataset})", "", f"Command: `{command}`", "",
             f"Per user: its last {cfg['like_positives']} real items (held out of the memory) mixed with never-interacted "
             "items at each ratio, one shuffled feed; like = P(fast skip) < 0.5. Brackets: 95% bootstrap intervals over "
             "users. Protocol and choices: `benchmarks/protocols/agent4rec.py`.", ""]
    for r in ratios:
        s = results["scenes"][f"1:{r}"]
        lines += [f"## Like / dislike, 1:{r} ({s['users']} users, {s['items']} items)", "",
                  "| contender | accuracy | precision | recall | F1 | ROC AUC |", "| --- | --- | --- | --- | --- | --- |"]
        lines += [f"| {name} | {cell(m, 'accuracy')} | {cell(m, 'precision')} | {cell(m, 'recall')} | {cell(m, 'f1')} | "
                  f"{cell(m, 'auc')} |" for name, row in rows.items() if (m := row.get(f"like 1:{r}")) is not None]
        if r == 1:
            lines += [f"| *published (other splits and models)* | {PUBLISHED['like 1:1']} | | | | |"]
        lines.append("")
    lines += ["## Rating error on the held-out real items (expected rating if watched)", "",
              "| contender | RMSE | MAE | n |", "| --- | --- | --- | --- |"]
    lines += [f"| {name} | {cell(m, 'rmse')} | {cell(m, 'mae')} | {int(m['n'])} |" for name, row in rows.items()
              if (m := row.get("rating")) is not None]
    lines += [f"| *published (other splits and models)* | {PUBLISHED['rating RMSE']} | | |", ""]
    return "\n".join(lines) + "\n"


def plot_results(results: dict, path) -> None:
    """Like / dislike accuracy and F1 against the negatives ratio, one line per contender."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ratios = results["ratios"]
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.4))
    for name, row in results["rows"].items():
        if f"like 1:{ratios[0]}" not in row:
            continue
        for ax, key in zip(axes, ("accuracy", "f1")):
            ax.plot(ratios, [row[f"like 1:{r}"][key] for r in ratios], "o-", label=name)
    for ax, key in zip(axes, ("accuracy", "F1 of like")):
        ax.set_xscale("log")
        ax.set_xticks(ratios, [f"1:{r}" for r in ratios])
        ax.set_xlabel("real : never-interacted items")
        ax.set_ylabel(key)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=2, fontsize=7)
    fig.suptitle("Agent4Rec protocol, held-out users")
    fig.tight_layout(rect=(0, 0.14, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run(names: Sequence[str], dataset_name: str, config: FidelityConfig, out: str | None, command: str) -> dict:
    """Evaluate the named contenders (``benchmarks.fidelity.contenders_for``) and the mean-rating baselines, print the
    tables and write ``out.{md,json,png}``."""
    from benchmarks.fidelity import contenders_for
    from benchmarks.report import publish
    from recsim_env.data import load_dataset

    ds = load_dataset(dataset_name)
    results = evaluate(ds, contenders_for(names, ds, config.seed) + mean_rating_contenders(ds), config)
    results["command"] = command
    text = format_results(results, ds.name, command)
    return publish(text, results, out, plot_results)
