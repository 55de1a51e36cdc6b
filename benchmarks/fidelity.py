"""Fidelity of user simulators against held-out real behaviour.

Protocol (UserMirrorer's 5-option evaluation, simplified): for users of the *test* split (never
seen when fitting), pick real interactions at random positions; the memory is the user's real
history before it; the options are the real next item and 4 items the user never interacted
with, in random order. Negatives are drawn ``uniform``-ly from the catalogue, or ``popular``
(proportional to train popularity, which removes the easy win of popularity). A scorer gives a
distribution over the 5 options; we report argmax accuracy, expected accuracy (mean probability
of the real item) and log-loss, next to chance (1/5).

Run: ``python -m benchmarks.fidelity`` (writes ``benchmarks/results/fidelity_choice.md``).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from recsim_env.data import Dataset, load_dataset
from recsim_env.features import item_features
from simulators.base import SimulationRequest, UserSimulator

__all__ = [
    "ChoiceScene", "choice_metrics", "choice_scenes", "co_occurrence_scorer", "popularity_scorer", "random_scorer",
    "simulator_scorer",
]

Scorer = Callable[[Sequence["ChoiceScene"]], np.ndarray]


@dataclass
class ChoiceScene:
    """One held-out decision: the user's memory before it and the options, ``target`` the real one."""

    user: int
    request: SimulationRequest
    target: int


def choice_scenes(
    dataset: Dataset, split: str = "test", n_options: int = 5, per_user: int = 5, negatives: str = "uniform",
    memory: int = 30, min_history: int = 5, seed: int = 0,
) -> list[ChoiceScene]:
    """Held-out choice scenes of ``split`` users (seeded, reproducible)."""
    if negatives not in ("uniform", "popular"):
        raise ValueError(f"negatives must be 'uniform' or 'popular', got {negatives!r}.")
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
            scenes.append(ChoiceScene(user=int(u), request=req, target=target))
    return scenes


def simulator_scorer(simulator: UserSimulator, batch_size: int = 256) -> Scorer:
    """Distribution over the options from a simulator's page-mode answer, 'none' removed."""

    def score(scenes: Sequence[ChoiceScene]) -> np.ndarray:
        out = []
        for start in range(0, len(scenes), batch_size):
            chunk = [s.request for s in scenes[start : start + batch_size]]
            rngs = [np.random.default_rng(0) for _ in chunk]
            for resp in simulator.respond(chunk, rngs):
                if resp.choice_probs is None:
                    raise ValueError("The simulator gave no choice_probs in page mode; it cannot be scored.")
                p = np.asarray(resp.choice_probs[: len(chunk[0].slate)], dtype=np.float64)
                out.append(p / p.sum())
        return np.array(out)

    return score


def popularity_scorer(dataset: Dataset) -> Scorer:
    """All mass on the most popular option (train counts)."""
    count = item_features(dataset).count

    def score(scenes: Sequence[ChoiceScene]) -> np.ndarray:
        c = np.stack([count[s.request.slate] for s in scenes])
        return np.eye(c.shape[1])[c.argmax(1)]

    return score


def co_occurrence_scorer(dataset: Dataset, window: int = 50, decay: float = 0.8) -> Scorer:
    """All mass on the option that train users most often consumed near the user's recent watched items.

    The item-to-item baseline (item-kNN style): the fitted simulator's co-occurrence term alone.
    """
    from recsim_env.features import co_occurrence, recency_weights

    cooc = co_occurrence(dataset, window)

    def score(scenes: Sequence[ChoiceScene]) -> np.ndarray:
        hist = _right_aligned([s.request.history_items for s in scenes])
        skipped = _right_aligned([s.request.history_skipped for s in scenes], fill=True).astype(bool)
        items = np.stack([s.request.slate for s in scenes])
        c = cooc.weighted(cooc.pair_affinity(hist, items), recency_weights(hist, decay) * ~skipped)
        best = c == c.max(1, keepdims=True)
        return best / best.sum(1, keepdims=True)

    return score


def _right_aligned(rows: Sequence[np.ndarray], fill=-1) -> np.ndarray:
    width = max(1, max(len(r) for r in rows))
    out = np.full((len(rows), width), fill, dtype=np.int64)
    for i, r in enumerate(rows):
        if len(r):
            out[i, width - len(r) :] = r
    return out


def random_scorer(scenes: Sequence[ChoiceScene]) -> np.ndarray:
    """Uniform over the options (chance)."""
    k = len(scenes[0].request.slate)
    return np.full((len(scenes), k), 1.0 / k)


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


def main(argv: list[str] | None = None) -> int:
    from simulators.fitted import FittedUserModel, FittedUserModelConfig

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--per-user", type=int, default=10)
    parser.add_argument("--out", default="benchmarks/results/fidelity_choice.md")
    args = parser.parse_args(argv)
    ds = load_dataset(args.dataset)
    sim = FittedUserModel.fit(ds)
    no_co = FittedUserModel.fit(ds, FittedUserModelConfig(co_window=0))
    lines = [
        f"# 5-option choice accuracy on held-out test users ({ds.name})", "",
        f"Command: `python -m benchmarks.fidelity --dataset {args.dataset} --per-user {args.per_user}`", "",
        "| negatives | scorer | accuracy | expected acc. | log-loss | chance | scenes |", "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for negatives in ("uniform", "popular"):
        scenes = choice_scenes(ds, "test", per_user=args.per_user, negatives=negatives, seed=0)
        targets = np.array([s.target for s in scenes])
        scorers = (
            ("random", random_scorer), ("popularity", popularity_scorer(ds)),
            ("co-occurrence (item-to-item)", co_occurrence_scorer(ds, sim.config.co_window, sim.decay)),
            ("fitted without co-occurrence", simulator_scorer(no_co)), ("fitted", simulator_scorer(sim)),
        )
        for name, scorer in scorers:
            m = choice_metrics(scorer(scenes), targets)
            lines.append(
                f"| {negatives} | {name} | {m['accuracy']:.3f} | {m['expected_accuracy']:.3f} | {m['log_loss']:.3f} | "
                f"{m['chance']:.2f} | {int(m['n'])} |"
            )
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
