"""Fidelity of user simulators against held-out real behaviour (test users only, never used in fitting).

Every contender (baselines and simulators) answers the *same* seeded scenes. Three protocols:

1. **Choice** (UserMirrorer): 5-option scenes. ``exposure`` options come from the scene builder
   (:mod:`simulators.training.scenes`, UserMirrorer's Algorithm 1: random / collaborative / content top
   lists); ``uniform`` and ``popular`` draw the 4 distractors from the catalogue uniformly or by train
   popularity. Reported: argmax accuracy (ties split), expected accuracy (mean probability of the real
   item), log-loss, chance, and the **position-swap** accuracy: the same scenes with the options in
   reverse order (a simulator that reads the items, not their positions, scores the same).
2. **Like / dislike** (Agent4Rec): per user, the last ``like_positives`` real interactions (held out
   of the memory) mixed 1:1 with items the user never interacted with, shown as one shuffled feed;
   "like" = P(fast skip) < 0.5. Accuracy, precision, recall, F1 of "like".
3. **Feed judge / reason** (G-UBS): the users' next real interactions as a feed; judge = P(fast skip)
   >= 0.5 against the real fast skip (accuracy, F1 of "skip"); reason = argmax of the reason
   distribution given a skip, on the real skips, against the data-derived labels of
   :mod:`simulators.training.labels` (accuracy, macro F1).

Baselines: ``random`` (seeded coin flips / uniform draws), ``popularity`` (choice: the most popular
option; feed: like an item iff its train count is above the catalogue median; reasons: the most
frequent label of the train scenes), ``co-occurrence`` (choice only: item-to-item). A contender
that does not answer a protocol shows "-".

Run: ``python -m benchmarks.fidelity`` (baselines and the data-fitted simulator; add LLM rows with
``--simulators llm,llm:<adapter dir>``) or ``recsim eval-simulator --simulator <name|adapter dir>``.
Writes ``benchmarks/results/fidelity.{md,json,png}``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from benchmarks.report import publish
from recsim_env.data import Dataset, load_dataset
from recsim_env.features import item_features
from simulators.base import SimulationRequest, UserSimulator, choice_distributions, stack_memory
from simulators.training.scenes import ChoiceScene, FeedScene, SceneConfig
from simulators.training.scenes import choice_scenes as exposure_scenes

__all__ = [
    "Contender", "FidelityConfig", "binary_cis", "binary_metrics", "bootstrap_ci", "choice_metrics", "choice_scenes", "class_metrics",
    "co_occurrence_scorer", "evaluate", "like_requests", "popularity_scorer", "random_scorer", "reversed_scenes", "roc_auc",
    "simulator_contender", "simulator_scorer",
]

Scorer = Callable[[Sequence[ChoiceScene]], np.ndarray]
SkipScorer = Callable[[Sequence[SimulationRequest]], list[np.ndarray]]

# G-UBS's judge / reason figures sit in that table (the protocol this one follows, on their IF-VR feeds). The other
# papers' figures sit only in their own protocols' tables (benchmarks/protocols/): these scenes are not theirs.
GUBS_PUBLISHED = "| *published: G-UBS on IF-VR (real video feeds with stated reasons; other data)* | | 0.549 | | 0.629 | |"


@dataclass(frozen=True)
class FidelityConfig:
    """Which scenes every contender answers (all seeded)."""

    split: str = "test"
    negatives: tuple[str, ...] = ("exposure", "popular")
    per_user: int = 5
    like_positives: int = 5
    feed_per_user: int = 2
    memory: int = 30
    min_history: int = 5
    seed: int = 0

    def __post_init__(self) -> None:
        unknown = set(self.negatives) - {"exposure", "uniform", "popular"}
        if not self.negatives or unknown:
            raise ValueError(f"negatives must be a non-empty subset of exposure, uniform, popular; got {self.negatives}.")
        if min(self.per_user, self.like_positives, self.feed_per_user, self.memory, self.min_history) < 1:
            raise ValueError("per_user, like_positives, feed_per_user, memory and min_history must be >= 1.")


# ------------------------------------------------------------------------------------------ scenes
def choice_scenes(
    dataset: Dataset, split: str = "test", n_options: int = 5, per_user: int = 5, negatives: str = "exposure",
    memory: int = 30, min_history: int = 5, seed: int = 0,
) -> list[ChoiceScene]:
    """Held-out choice scenes of ``split`` users (seeded); see the module docstring for ``negatives``."""
    if negatives == "exposure":
        config = SceneConfig(eval_options=n_options, per_user=per_user, memory=memory, min_history=min_history, seed=seed)
        return exposure_scenes(dataset, split, config, evaluation=True)
    if negatives not in ("uniform", "popular"):
        raise ValueError(f"negatives must be 'exposure', 'uniform' or 'popular', got {negatives!r}.")
    rng = np.random.default_rng(seed)
    p = item_features(dataset).count + 1.0
    p = p / p.sum() if negatives == "popular" else None
    scenes = []
    for u in dataset.users(split):
        h = dataset.history(u)
        n = h.stop - h.start
        if n <= min_history:
            continue
        seen = np.zeros(dataset.n_items, bool)
        seen[dataset.inter_item[h]] = True
        for end in np.sort(rng.choice(np.arange(min_history, n), min(per_user, n - min_history), replace=False)):
            negs: list[int] = []
            while len(negs) < n_options - 1:
                cand = int(rng.choice(dataset.n_items, p=p))
                if not seen[cand] and cand not in negs:
                    negs.append(cand)
            target = int(rng.integers(n_options))
            options = np.array(negs[:target] + [int(dataset.inter_item[h.start + end])] + negs[target:])
            req = SimulationRequest.from_history(dataset, u, int(end), options, "page", memory)
            sources = tuple("target" if j == target else negatives for j in range(n_options))
            scenes.append(ChoiceScene(int(u), int(end), req, target, sources))
    return scenes


def reversed_scenes(scenes: Sequence[ChoiceScene]) -> list[ChoiceScene]:
    """The same scenes with the options in reverse order (the position-swap test)."""
    out = []
    for s in scenes:
        r = s.request
        req = dataclasses.replace(r, slate=r.slate[::-1].copy(), repeated=np.asarray(r.repeated)[::-1].copy())
        out.append(ChoiceScene(s.user, s.position, req, len(r.slate) - 1 - s.target, tuple(reversed(s.sources))))
    return out


def like_requests(
    dataset: Dataset, split: str = "test", positives: int = 5, memory: int = 30, min_history: int = 5, seed: int = 0,
    ratio: int = 1,
) -> tuple[list[SimulationRequest], list[np.ndarray]]:
    """Agent4Rec's protocol: per user, the last ``positives`` real items (held out of the memory) and ``ratio`` times
    as many never-interacted items, shuffled into one feed request; returns (requests, truth: True = real item).
    Users without enough never-interacted items for the ratio are left out."""
    rng = np.random.default_rng([seed, 3] if ratio == 1 else [seed, 3, ratio])  # ratio 1: the scenes of earlier runs
    requests, truth = [], []
    for u in dataset.users(split):
        h = dataset.history(u)
        n = h.stop - h.start
        if n < min_history + positives:
            continue
        seen = np.zeros(dataset.n_items, bool)
        seen[dataset.inter_item[h]] = True
        if (~seen).sum() < ratio * positives:
            continue
        negatives = rng.choice(np.flatnonzero(~seen), ratio * positives, replace=False)
        items = np.concatenate([dataset.inter_item[h.start + n - positives : h.stop], negatives])
        order = rng.permutation(len(items))
        requests.append(SimulationRequest.from_history(dataset, u, n - positives, items[order], "feed", memory))
        truth.append((np.arange(len(items)) < positives)[order])
    return requests, truth


# --------------------------------------------------------------------------------------- contenders
@dataclass
class Contender:
    """A row of the table: what it answers for each protocol (None: not answered)."""

    name: str
    choice: Scorer | None = None
    skip: SkipScorer | None = None
    reasons: Callable[[Sequence[SimulationRequest]], list[np.ndarray]] | None = None
    ratings: Callable[[Sequence[SimulationRequest]], list[np.ndarray]] | None = None  # expected rating per item if watched
    simulator: UserSimulator | None = None  # the simulator behind the row, if any (protocols may set how it is shown items)


def simulator_scorer(simulator: UserSimulator, batch_size: int = 256) -> Scorer:
    """Distribution over the options from a simulator's page-mode answer, 'none' removed."""

    def score(scenes: Sequence[ChoiceScene]) -> np.ndarray:
        return np.array(choice_distributions(simulator, [s.request for s in scenes], batch_size))

    return score


def _simulator_skips(simulator: UserSimulator, batch_size: int = 256) -> SkipScorer:
    def skip(requests: Sequence[SimulationRequest]) -> list[np.ndarray]:
        out = []
        for start in range(0, len(requests), batch_size):
            chunk = list(requests[start : start + batch_size])
            for resp in simulator.respond(chunk, [np.random.default_rng(0) for _ in chunk]):
                if resp.skip_probs is None:
                    raise ValueError("The simulator gave no skip_probs in feed mode; it cannot be scored.")
                out.append(np.asarray(resp.skip_probs, dtype=np.float64))
        return out

    return skip


def simulator_contender(name: str, simulator: UserSimulator) -> Contender:
    """A simulator answers every protocol; reasons where it has ``reason_probs`` (the LLM simulator), ratings where it
    has ``expected_ratings`` (the data-fitted model)."""
    return Contender(name, simulator_scorer(simulator), _simulator_skips(simulator), getattr(simulator, "reason_probs", None),
                     getattr(simulator, "expected_ratings", None), simulator)


def random_scorer(scenes: Sequence[ChoiceScene]) -> np.ndarray:
    """Uniform over the options (chance)."""
    k = len(scenes[0].request.slate)
    return np.full((len(scenes), k), 1.0 / k)


def popularity_scorer(dataset: Dataset) -> Scorer:
    """All mass on the most popular option (train counts)."""
    count = item_features(dataset).count

    def score(scenes: Sequence[ChoiceScene]) -> np.ndarray:
        c = np.stack([count[s.request.slate] for s in scenes])
        return np.eye(c.shape[1])[c.argmax(1)]

    return score


def co_occurrence_scorer(dataset: Dataset, window: int = 50, decay: float = 0.8, memory: int = 30) -> Scorer:
    """All mass on the option that train users most often consumed near the user's recent watched items.

    The item-to-item baseline (item-kNN style): the fitted simulator's co-occurrence term alone.
    """
    from recsim_env.features import co_occurrence, recency_weights

    cooc = co_occurrence(dataset, window)

    def score(scenes: Sequence[ChoiceScene]) -> np.ndarray:
        hist, _, skipped = stack_memory([s.request for s in scenes], memory)
        items = np.stack([s.request.slate for s in scenes])
        c = cooc.weighted(cooc.pair_affinity(hist, items), recency_weights(hist, decay) * ~skipped)
        best = c == c.max(1, keepdims=True)
        return best / best.sum(1, keepdims=True)

    return score


def baseline_contenders(dataset: Dataset, seed: int = 0, train_reasons: Sequence[int] = ()) -> list[Contender]:
    """random, popularity and co-occurrence (see the module docstring)."""
    count = item_features(dataset).count
    unpopular = (count <= np.median(count)).astype(np.float64)  # P(skip) 1 for the catalogue's less popular half
    n_classes = 3
    majority = np.bincount(np.asarray(train_reasons, dtype=np.int64), minlength=n_classes).argmax() if len(train_reasons) else 0

    def coin(requests):
        rng = np.random.default_rng([seed, 4])
        return [rng.random(len(r.slate)) for r in requests]

    def random_reasons(requests):
        rng = np.random.default_rng([seed, 5])
        return [rng.dirichlet(np.ones(n_classes), len(r.slate)) for r in requests]

    return [
        Contender("random", random_scorer, coin, random_reasons),
        Contender(
            "popularity", popularity_scorer(dataset), lambda reqs: [unpopular[r.slate] for r in reqs],
            lambda reqs: [np.tile(np.eye(n_classes)[majority], (len(r.slate), 1)) for r in reqs],
        ),
        Contender("co-occurrence (item-to-item)", co_occurrence_scorer(dataset)),
    ]


# ------------------------------------------------------------------------------------------ metrics
def choice_metrics(probs: np.ndarray, targets: np.ndarray) -> dict[str, float]:
    """Argmax accuracy (ties split evenly), expected accuracy, log-loss, chance."""
    probs = np.asarray(probs, dtype=np.float64)
    rows = np.arange(len(targets))
    best = probs == probs.max(1, keepdims=True)
    acc = float((best[rows, targets] / best.sum(1)).mean())
    return {
        "accuracy": acc,
        "expected_accuracy": float(probs[rows, targets].mean()),
        "log_loss": float(-np.log(np.clip(probs[rows, targets], 1e-12, None)).mean()),
        "chance": 1.0 / probs.shape[1],
        "n": float(len(targets)),
    }


def roc_auc(scores: np.ndarray, truth: np.ndarray) -> float:
    """P(score of a random positive > score of a random negative), ties counting half (Mann-Whitney U).
    Threshold-free: it says whether the scores tell the classes apart, whatever their level; NaN when
    one class is absent."""
    scores, truth = np.asarray(scores, dtype=np.float64), np.asarray(truth, bool)
    n_pos, n_neg = int(truth.sum()), int((~truth).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    i = 0
    while i < len(scores):  # average ranks over ties
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[truth].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def binary_metrics(predicted: np.ndarray, truth: np.ndarray, scores: np.ndarray | None = None) -> dict[str, float]:
    """Accuracy, precision, recall and F1 of the positive class (0 where undefined); with ``scores``
    (higher = more likely positive) also the ROC AUC."""
    predicted, truth = np.asarray(predicted, bool), np.asarray(truth, bool)
    tp = float((predicted & truth).sum())
    precision = tp / predicted.sum() if predicted.any() else 0.0
    recall = tp / truth.sum() if truth.any() else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    out = {"accuracy": float((predicted == truth).mean()), "precision": precision, "recall": recall, "f1": f1,
           "positive_rate": float(truth.mean()), "n": float(len(truth))}
    if scores is not None:
        out["auc"] = roc_auc(scores, truth)
    return out


def bootstrap_ci(metric, users: np.ndarray, n: int = 500, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of ``metric(index array)`` over ``n`` resamples of the users (with replacement): each
    resample takes every item of each drawn user, so items of one user stay together."""
    users = np.asarray(users)
    ids, inverse = np.unique(users, return_inverse=True)
    members = [np.flatnonzero(inverse == k) for k in range(len(ids))]
    rng = np.random.default_rng([seed, 7])
    values = []
    for _ in range(n):
        idx = np.concatenate([members[k] for k in rng.integers(0, len(ids), len(ids))])
        v = metric(idx)
        if np.isfinite(v):
            values.append(v)
    a = (1 - level) / 2
    return (float(np.quantile(values, a)), float(np.quantile(values, 1 - a))) if values else (float("nan"), float("nan"))


def _fast_auc(scores: np.ndarray, truth: np.ndarray) -> float:
    from scipy.stats import rankdata

    n_pos, n_neg = int(truth.sum()), int((~truth).sum())
    if not n_pos or not n_neg:
        return float("nan")
    return float((rankdata(scores)[truth].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def binary_cis(m: dict, predicted: np.ndarray, truth: np.ndarray, scores: np.ndarray, users: np.ndarray) -> dict:
    """Adds 95% bootstrap intervals over users of accuracy, F1 and ROC AUC to the metrics ``m``."""
    m["accuracy_ci"] = bootstrap_ci(lambda i: float((predicted[i] == truth[i]).mean()), users)
    m["f1_ci"] = bootstrap_ci(lambda i: binary_metrics(predicted[i], truth[i])["f1"], users)
    m["auc_ci"] = bootstrap_ci(lambda i: _fast_auc(scores[i], truth[i]), users)
    return m


def class_metrics(predicted: np.ndarray, truth: np.ndarray, n_classes: int) -> dict[str, float]:
    """Accuracy and macro F1 (mean over classes present in truth or prediction)."""
    predicted, truth = np.asarray(predicted, np.int64), np.asarray(truth, np.int64)
    f1s = []
    for c in range(n_classes):
        if (truth == c).any() or (predicted == c).any():
            f1s.append(binary_metrics(predicted == c, truth == c)["f1"])
    return {"accuracy": float((predicted == truth).mean()), "macro_f1": float(np.mean(f1s)), "n": float(len(truth))}


# ----------------------------------------------------------------------------------------- evaluate
@dataclass
class _Scenes:
    choice: dict[str, list[ChoiceScene]]
    like: tuple[list[SimulationRequest], list[np.ndarray]]
    feed: list[FeedScene]
    labels: list[list]


def _build(dataset: Dataset, config: FidelityConfig) -> _Scenes:
    from simulators.training.labels import DataLabeller
    from simulators.training.scenes import feed_scenes

    c = config
    choice = {
        neg: choice_scenes(dataset, c.split, 5, c.per_user, neg, c.memory, c.min_history, c.seed) for neg in c.negatives
    }
    like = like_requests(dataset, c.split, c.like_positives, c.memory, c.min_history, c.seed)
    feed = feed_scenes(dataset, c.split, SceneConfig(per_user=c.feed_per_user, memory=c.memory, min_history=c.min_history, seed=c.seed))
    return _Scenes(choice, like, feed, DataLabeller(dataset).label(feed))


def evaluate(dataset: Dataset, contenders: Sequence[Contender], config: FidelityConfig | None = None, progress: bool = True) -> dict:
    """``{contender: {protocol: metrics}}`` on the same scenes for every contender."""
    from tqdm.auto import tqdm

    config = config or FidelityConfig()
    sc = _build(dataset, config)
    skips = np.concatenate([s.skipped for s in sc.feed])
    reason_truth = [(i, k, lab.index) for i, row in enumerate(sc.labels) for k, lab in enumerate(row) if lab is not None]
    results: dict = {"config": dataclasses.asdict(config), "rows": {}}
    for c in contenders:
        row: dict = {}
        steps = tqdm(total=2 * len(sc.choice) * (c.choice is not None) + 2 * (c.skip is not None) + (c.reasons is not None),
                     desc=f"fidelity: {c.name}", disable=not progress)
        if c.choice is not None:
            for neg, scenes in sc.choice.items():
                targets = np.array([s.target for s in scenes])
                probs = np.asarray(c.choice(scenes), dtype=np.float64)
                m = choice_metrics(probs, targets)
                m["accuracy_ci"] = bootstrap_ci(lambda i: choice_metrics(probs[i], targets[i])["accuracy"],
                                                np.array([s.user for s in scenes]))
                steps.update()
                swapped = reversed_scenes(scenes)
                m["swap_accuracy"] = choice_metrics(c.choice(swapped), np.array([s.target for s in swapped]))["accuracy"]
                steps.update()
                row[f"choice_{neg}"] = m
        if c.skip is not None:
            reqs, truth = sc.like
            p = np.concatenate(c.skip(reqs))
            t = np.concatenate(truth)
            users = np.concatenate([[r.user] * len(r.slate) for r in reqs])
            row["like"] = binary_cis(binary_metrics(p < 0.5, t, scores=1.0 - p), p < 0.5, t, 1.0 - p, users)
            steps.update()
            p = np.concatenate(c.skip([s.request for s in sc.feed]))
            users = np.concatenate([[s.user] * len(s.request.slate) for s in sc.feed])
            row["judge"] = binary_cis(binary_metrics(p >= 0.5, skips, scores=p), p >= 0.5, skips, p, users)
            steps.update()
        if c.reasons is not None and reason_truth:
            dists = c.reasons([s.request for s in sc.feed])
            pred = np.array([int(np.argmax(dists[i][k])) for i, k, _ in reason_truth])
            row["reason"] = class_metrics(pred, np.array([t for _, _, t in reason_truth]), dists[0].shape[1])
            steps.update()
        steps.close()
        results["rows"][c.name] = row
    return results


def format_results(results: dict, dataset: str, commands: str | Sequence[str]) -> str:
    """Markdown: one table per protocol; G-UBS's published judge / reason figures in that table."""
    rows = results["rows"]
    cfg = results["config"]
    commands = [commands] if isinstance(commands, str) else list(commands)

    def cell(row, proto, key):
        m = row.get(proto)
        if m is None or key not in m or not np.isfinite(m[key]):
            return "-"
        ci = m.get(f"{key}_ci")
        return f"{m[key]:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]" if ci is not None and np.isfinite(ci[0]) else f"{m[key]:.3f}"

    lines = [f"# Simulator fidelity on held-out {cfg['split']} users ({dataset})", "",
             "Brackets: 95% bootstrap intervals over users (rows evaluated before intervals were added have none).", ""]
    if len(commands) == 1:
        lines += [f"Command: `{commands[0]}`", ""]
    else:
        lines += ["Commands (later ones add rows on the same seeded scenes):", ""] + [f"- `{c}`" for c in commands] + [""]
    for neg in cfg["negatives"]:
        proto = f"choice_{neg}"
        n = next((int(r[proto]["n"]) for r in rows.values() if proto in r), 0)
        lines += [f"## 5-option choice, {neg} distractors ({n} scenes, chance 0.20)", "",
                  "| contender | accuracy | expected acc. | log-loss | position-swap acc. |", "| --- | --- | --- | --- | --- |"]
        lines += [f"| {name} | {cell(r, proto, 'accuracy')} | {cell(r, proto, 'expected_accuracy')} | {cell(r, proto, 'log_loss')} | "
                  f"{cell(r, proto, 'swap_accuracy')} |" for name, r in rows.items()]
        lines.append("")
    like_n = next((int(r["like"]["n"]) for r in rows.values() if "like" in r), 0)
    lines += [f"## Like / dislike, Agent4Rec protocol ({like_n} items, half real)", "",
              "| contender | accuracy | precision | recall | F1 | ROC AUC |", "| --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {name} | {cell(r, 'like', 'accuracy')} | {cell(r, 'like', 'precision')} | {cell(r, 'like', 'recall')} | "
              f"{cell(r, 'like', 'f1')} | {cell(r, 'like', 'auc')} |" for name, r in rows.items()]
    judge = next((r["judge"] for r in rows.values() if "judge" in r), None)
    reason_n = next((int(r["reason"]["n"]) for r in rows.values() if "reason" in r), 0)
    lines += ["", f"## Feed: judge (fast skip) and reason ({int(judge['n']) if judge else 0} items, "
              f"{judge['positive_rate'] if judge else 0:.1%} real skips; {reason_n} labelled skips)", "",
              "| contender | judge acc. | judge F1 (skip) | judge ROC AUC | reason acc. | reason macro F1 |",
              "| --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {name} | {cell(r, 'judge', 'accuracy')} | {cell(r, 'judge', 'f1')} | {cell(r, 'judge', 'auc')} | "
              f"{cell(r, 'reason', 'accuracy')} | {cell(r, 'reason', 'macro_f1')} |" for name, r in rows.items()]
    lines += [GUBS_PUBLISHED, "", "Published figures of the other papers sit in their protocols' tables, measured the way "
              "they measured them: `recsim eval-simulator --protocol usermirrorer|agent4rec|policy-ranking` "
              "(benchmarks/protocols/). These scenes are not theirs, so no row here is set beside them."]
    return "\n".join(lines) + "\n"


def plot_results(results: dict, path: Path) -> None:
    """Grouped bars: choice accuracy (first protocol), like F1, judge F1, reason accuracy per contender."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    neg = results["config"]["negatives"][0]
    metrics = ((f"choice_{neg}", "accuracy", f"choice acc. ({neg})"), ("like", "f1", "like F1"),
               ("judge", "f1", "judge F1"), ("reason", "accuracy", "reason acc."))
    names = list(results["rows"])
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(names)), 3.6))
    width = 0.8 / len(metrics)
    for j, (proto, key, label) in enumerate(metrics):
        vals = [results["rows"][n].get(proto, {}).get(key, np.nan) for n in names]
        ax.bar(np.arange(len(names)) + j * width, vals, width, label=label)
    ax.axhline(0.2, color="grey", lw=0.8, ls="--")
    ax.set_xticks(np.arange(len(names)) + 0.4 - width / 2, names, rotation=20, ha="right", fontsize=8)
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7, ncol=4, loc="upper left")
    ax.set_title("Simulator fidelity on held-out users (dashed: 5-option chance)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def contenders_for(names: Sequence[str], dataset: Dataset, seed: int = 0, train_reasons: Sequence[int] = (),
                   perception: str | None = None) -> list[Contender]:
    """Contenders by name: random, popularity, co-occurrence, fitted, fitted-no-co, llm, llm:<adapter dir or
    shipped adapter name>, heads:<decision-heads dir or shipped name>, a shipped adapter's name, or a directory holding an adapter (``adapter_config.json``) or full weights (``config.json``).
    ``perception``: a ``recsim perceive`` folder whose captions the LLM contenders read (their labels say so)."""
    base = {c.name.split(" ")[0]: c for c in baseline_contenders(dataset, seed, train_reasons)}
    out = []
    for name in names:
        if name in base:
            out.append(base[name])
        elif name in ("fitted", "fitted-no-co"):
            from simulators.fitted import FittedUserModel, FittedUserModelConfig

            cfg = FittedUserModelConfig(co_window=0) if name == "fitted-no-co" else None
            label = "fitted without co-occurrence" if name == "fitted-no-co" else "fitted"
            out.append(simulator_contender(label, FittedUserModel.fit(dataset, cfg)))
        else:
            label, simulator = _llm(name, dataset, perception)
            out.append(simulator_contender(label + (" + video captions" if perception else ""), simulator))
    return out


def _llm(name: str, dataset: Dataset, perception: str | None = None) -> tuple[str, UserSimulator]:
    from simulators.llm import LLMUserSimulator

    kwargs = dict(dataset=dataset, greedy=True, on_error="raise", min_option_mass=0.0, batch_size=16, perception=perception)
    if name.startswith("heads:"):
        from simulators.llm.heads import DecisionHeads, resolve_heads_dir

        path = resolve_heads_dir(name.split(":", 1)[1])
        spec = DecisionHeads.load(path).spec
        inputs = {"llm": "LLM item states", "cues": "cues"}
        label = " + ".join(inputs[i] for i in spec.inputs)
        what = "LLM heads" if "llm" in spec.inputs else "cue model (no LLM)"
        return f"{what}: {label} ({path.name})", LLMUserSimulator(model=spec.model, adapter=spec.adapter, heads=str(path),
                                                                  dtype="float32", **kwargs)
    spec = name.split(":", 1)[1] if name.startswith("llm:") else (None if name == "llm" else name)
    if spec is None:
        return "LLM (SmolLM2-135M, base)", LLMUserSimulator(**kwargs)
    from simulators.llm.models import ModelNotFoundError, resolve_adapter_dir

    try:  # an adapter directory, or the name of a shipped one
        path = Path(resolve_adapter_dir(spec))
    except ModelNotFoundError:
        path = Path(spec)
    if (path / "adapter_config.json").is_file():
        return f"LLM +{_stages(path)} ({path.name})", LLMUserSimulator(adapter=str(path), **kwargs)
    if (path / "config.json").is_file():
        return f"LLM ({path.name})", LLMUserSimulator(model=str(path), **kwargs)
    raise SystemExit(
        f"Unknown simulator {name!r}: use random, popularity, co-occurrence, fitted, fitted-no-co, llm, "
        "llm:<adapter dir>, or a directory with an adapter (adapter_config.json) or a model (config.json)."
    )


def _stages(adapter: Path) -> str:
    """The training stages of an adapter from its card's ``init_card`` chain, oldest first ("SFT+DPO",
    "SFT+SFT-think+S-GRPO"): GRPO stages are named by their reward design."""
    card_path = adapter / "training_card.json"
    if not card_path.is_file():
        return "adapter"
    card, kinds = json.loads(card_path.read_text()), []
    designs = {"plain": "GRPO", "sgrpo": "S-GRPO", "gagrpo": "GA-GRPO", "vragent": "VRAgent-GRPO"}
    while card:
        kind, config = str(card.get("kind", "adapter")), card.get("config", {})
        if kind == "grpo":
            name = designs.get(config.get("rewards"), "GRPO")
            kinds.append(name + (" w/o group profiles" if config.get("no_group_profiles") else ""))
        else:
            kinds.append(kind.upper() + ("-think" if config.get("answer_format") == "think" else ""))
        card = card.get("init_card")
    return "+".join(reversed(kinds))


def train_reason_labels(dataset: Dataset, seed: int = 0) -> list[int]:
    """Reason labels of train users' feed scenes (what the popularity baseline's majority class comes from)."""
    from simulators.training.labels import DataLabeller
    from simulators.training.scenes import feed_scenes

    scenes = feed_scenes(dataset, "train", SceneConfig(per_user=2, seed=seed))
    return [lab.index for row in DataLabeller(dataset).label(scenes) for lab in row if lab is not None]


def _md_commands(path: Path) -> list[str]:
    """The command lines of a table written before the JSON kept them."""
    if not path.is_file():
        return []
    return [line.split("`")[1] for line in path.read_text().splitlines()
            if line.startswith(("Command: `", "- `python", "- `recsim")) and line.count("`") >= 2]


def run(names: Sequence[str], dataset_name: str, config: FidelityConfig, out: str | None, command: str,
        add_to: str | None = None, perception: str | None = None) -> dict:
    """Evaluate the named contenders, print the tables and write ``out.{md,json,png}`` (``out`` without suffix).

    ``add_to`` (a results path without suffix): evaluate only the new contenders on that run's scenes (its
    config, checked to match) and write the table with its rows and theirs; every command is listed.
    """
    ds = load_dataset(dataset_name)
    commands, previous = [command], {}
    if add_to:
        prev = json.loads(Path(add_to).with_suffix(".json").read_text())
        if prev["config"] != json.loads(json.dumps(dataclasses.asdict(config))):  # as JSON: tuples are lists there
            raise SystemExit(f"--add-to {add_to}: that table was made with config {prev['config']}, this run has "
                             f"{dataclasses.asdict(config)}; rows are only comparable on the same scenes (pass the same options).")
        earlier = prev.get("commands") or _md_commands(Path(add_to).with_suffix(".md"))
        previous, commands = prev["rows"], earlier + commands
    results = evaluate(ds, contenders_for(names, ds, config.seed, train_reason_labels(ds, config.seed), perception), config)
    results["rows"] = {**previous, **results["rows"]}
    results["commands"] = commands
    text = format_results(results, ds.name, commands)
    return publish(text, results, out, plot_results)


DEFAULT_CONTENDERS = ("random", "popularity", "co-occurrence", "fitted-no-co", "fitted")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--simulators", default=",".join(DEFAULT_CONTENDERS),
                        help="comma-separated contenders (see contenders_for), e.g. random,fitted,llm,llm:runs/sft")
    parser.add_argument("--per-user", type=int, default=FidelityConfig.per_user)
    parser.add_argument("--out", default="benchmarks/results/fidelity", help="output path without suffix")
    parser.add_argument("--add-to", default=None, help="a results path without suffix: add these rows to that table "
                        "(same scenes: its config must match this run's)")
    args = parser.parse_args(argv)
    command = shlex.join(["python", "-m", "benchmarks.fidelity", *(argv if argv is not None else sys.argv[1:])])
    run(args.simulators.split(","), args.dataset, FidelityConfig(per_user=args.per_user), args.out, command, args.add_to)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
