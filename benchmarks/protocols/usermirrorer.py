"""UserMirrorer's 5-option choice protocol, with scenes built as their released code builds them.

Read from UserMirrorer/UserMirrorer (``usermirrorer/sampler/sampler.py``, ``scene_sampling.py``,
``strategy/ml1m_strategy.py``, ``formatter/mapping.py``, ``run_eval.py``; eval scenes: ``run.sh``'s
``--min_exposure_length 5 --max_exposure_length 5 --eval_set``). Each choice below is theirs, with the reason it
matters for the number:

- **Which decisions.** Real interactions drawn uniformly (without replacement) from the pool of interactions that are
  at least the user's 4th (``min_interaction_cnt=3`` on the 0-based chronological order). Here only held-out ``split``
  users' interactions, so no simulator was fitted on them (theirs: any user).
- **Three sources, top 32 each, BEFORE filtering** (``sample_num = max(32, 3 * max_exposure_length)``): ``random``
  (32 catalogue items at random), ``collaborative`` (the user's **full** binary row, future items and the target
  included, times ``V V^T`` of a degree-normalised spectral item embedding: 64 right singular vectors of
  ``D_u^-1/2 R D_i^-1/2`` scaled by ``D_i^1/2``, computed on all users' interactions) and ``content-based``
  (similarity to the **target** item's text embedding). Because the top lists are taken before the user's rated
  items are removed, few collaborative candidates survive and most distractors are random, often obscure, films:
  that is why picking the most popular option already scores far above chance on these scenes.
- **Merge** (``merge_ranking_list``): the three lists interleaved at random, each keeping its own order, duplicates
  dropped (first kept).
- **Filters**: items released after the interaction (release year's 1 January later than its timestamp; items of
  unknown year pass), then every item the user ever interacted with (its full history, the target included).
- **Clip**: the first 4 survivors (scenes with fewer are dropped), then the real item is inserted at
  ``randint(0, 3)``: it is never option E, so a position-only guess over A-D scores 0.25 (the "position prior" row).
- **Memory**: the user's interactions strictly before the target's timestamp, the last ``randint(2, 10)`` of them.
- **Item line** (``template_action_list``): ``"{[New Release] if released within 365 days}{title (year)} - {genres}"``,
  no rating statistics. The LLM simulator's letters path shows exactly these lines
  (:attr:`simulators.llm.prompts.SceneBuilder.option_lines`) after its own profile and memory lines and with its own
  "None of these" option (dropped and renormalised when scoring); its decision heads read one fixed text per item
  (title, year, genres; no statistics either), so they do not see the "[New Release]" tag.
- **Scoring**: their ``run_eval`` samples 3 answers per scene and averages hits; its expectation is the simulator's
  mean probability of the real item, reported as **expected accuracy** with a standard error over scenes, beside the
  seeded 3-sample estimate and the argmax accuracy (ties split).

Substitution: their content embedding is gte-Qwen2-1.5B-instruct over ``json.dumps({title, genres, year})``; here
it is TF-IDF (unit-normalised, so similarity is cosine) over the same text: no such model ships here.

Their released evaluation scenes (``<dataset>_eval.jsonl``, as their ``scene_sampling.py --eval_set`` writes them
and the MirrorUser/UserMirrorer-eval set holds them: ``text``, ``user_id``, ``item_id``, ``timestamp``, ``item_pos``,
``choice_cnt``, ``dataset``) are scored instead when they are on disk: ``--scenes PATH``, or without it
``$RECSIM_CACHE/usermirrorer/<dataset>_eval.jsonl`` when that file exists (:func:`released_scenes_path`). Rows of
another ``dataset`` are skipped; the dataset must have their users and items (their MovieLens scenes: ml-1m): options are matched to items by their item line, the memory is the user's last
``n`` real items before the timestamp, ``n`` the number of history entries in their text. :func:`save_scenes`
writes scenes built here in that format (plus the options' ids, ``impression_list``, which their reader ignores), so
UserMirrorer's own ``run_eval.py`` can score them too.

Published figure (ML-1M, their scenes): Llama-3.2-3B 23.3%, +SFT+DPO (UserMirrorer) 67.3%, GPT-5.1 63.3%,
Gemini-3-Pro 73.6%; chance 20%.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

import numpy as np

from benchmarks.fidelity import Contender, choice_metrics
from recsim_env.data import Dataset
from simulators.base import SimulationRequest
from simulators.training.scenes import ChoiceScene

__all__ = ["PUBLISHED", "Scene", "UserMirrorerConfig", "build_scenes", "collaborative_embedding", "content_embedding",
           "evaluate", "format_results", "item_line", "load_scenes", "merge_ranking_lists", "plot_results",
           "position_prior", "released_scenes_path", "run", "save_scenes"]

PUBLISHED = "Llama-3.2-3B 23.3%, +SFT+DPO (UserMirrorer) 67.3%, GPT-5.1 63.3%, Gemini-3-Pro 73.6% (ML-1M, their scenes)"
NEW_RELEASE = "[New Release]"
SOURCES = ("random", "collaborative", "content")  # their scoring methods, in the order their sampler adds them


@dataclass(frozen=True)
class UserMirrorerConfig:
    """Their eval-scene settings (defaults as in their ``run.sh``); ``n_scenes`` decisions are drawn (theirs: 256)."""

    split: str = "test"
    n_scenes: int = 1000
    n_options: int = 5
    top_k: int = 32
    min_order: int = 3
    memory: tuple[int, int] = (2, 10)
    n_components: int = 64
    repeats: int = 3
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n_scenes < 1 or self.n_options < 2 or self.top_k < self.n_options - 1 or self.repeats < 1:
            raise ValueError("n_scenes >= 1, n_options >= 2, top_k >= n_options - 1 and repeats >= 1 are needed; got "
                             f"{self.n_scenes}, {self.n_options}, {self.top_k}, {self.repeats}.")
        if not 0 <= self.memory[0] <= self.memory[1]:
            raise ValueError(f"memory must be (low, high) with 0 <= low <= high, got {self.memory}.")


@dataclass(frozen=True)
class Scene:
    """One decision: the scene every contender answers, its timestamp, and the option lines as their prompt shows them."""

    choice: ChoiceScene
    timestamp: float
    lines: tuple[str, ...]


# ------------------------------------------------------------------------------------------ items
@dataclass(frozen=True)
class _Catalogue:
    """Each item's title as their ML-1M files spell it (``Title (year)``), genres (``A|B``) and release time (1 January
    of its year, UTC seconds; NaN where unknown)."""

    titles: tuple[str, ...]
    genres: tuple[str, ...]
    years: tuple[int | None, ...]
    release: np.ndarray

    @classmethod
    def of(cls, dataset: Dataset) -> "_Catalogue":
        titles, genres, years = [], [], []
        for i in range(dataset.n_items):
            title, year, gen = "", None, []
            for name, ftype in dataset.item_field_types.items():
                value, low = dataset.item_fields[name][i], name.lower()
                text = " ".join(value) if isinstance(value, list) else str(value)
                if not title and ("title" in low or "name" in low):
                    title = text
                elif "year" in low and text.strip().isdigit():
                    year = int(text)
                elif ftype in ("token", "token_seq") and ("class" in low or "genre" in low or "categor" in low):
                    gen = list(value) if isinstance(value, list) else text.split()
            title = title or str(dataset.item_tokens[i])
            titles.append(f"{title} ({year})" if year is not None and f"({year})" not in title else title)
            genres.append("|".join(gen))
            years.append(year)
        release = np.array([datetime(y, 1, 1, tzinfo=timezone.utc).timestamp() if y is not None else np.nan for y in years])
        return cls(tuple(titles), tuple(genres), tuple(years), release)

    def line(self, i: int, timestamp: float) -> str:
        new = np.isfinite(self.release[i]) and (timestamp - self.release[i]) // 86400 <= 365
        return f"{NEW_RELEASE if new else ''}{self.titles[i]} - {self.genres[i]}"


def item_line(dataset: Dataset, i: int, timestamp: float) -> str:
    """Their ML-1M item line for item ``i`` shown at ``timestamp``: ``[New Release]`` when released at most 365 days
    before, then ``Title (year) - Genre|Genre``; no rating statistics."""
    return _Catalogue.of(dataset).line(i, timestamp)


def collaborative_embedding(dataset: Dataset, n_components: int = 64) -> np.ndarray:
    """Their ``get_spectral_info``: the top right singular vectors of ``D_u^-1/2 R D_i^-1/2`` (binary R over all
    users' interactions) scaled by ``D_i^1/2``; (n_items, n_components). Exact SVD (theirs: ``svd_lowrank``, q=256:
    the same top-32 lists, tested)."""
    r = np.zeros((dataset.n_users, dataset.n_items))
    r[dataset.inter_user, dataset.inter_item] = 1.0
    du, di = np.clip(r.sum(1), 1, None), np.clip(r.sum(0), 1, None)
    _, _, vt = np.linalg.svd(r / np.sqrt(du)[:, None] / np.sqrt(di)[None, :], full_matrices=False)
    return vt[:n_components].T * np.sqrt(di)[:, None]


def content_embedding(dataset: Dataset, catalogue: _Catalogue | None = None) -> np.ndarray:
    """Unit-norm TF-IDF vectors of each item's ``json.dumps({title, genres, year})`` (their embedding model's input)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    c = catalogue or _Catalogue.of(dataset)
    texts = [json.dumps({"title": t, "genres": g, "year": None if y is None else str(y)})
             for t, g, y in zip(c.titles, c.genres, c.years)]
    return TfidfVectorizer().fit_transform(texts).toarray()


def merge_ranking_lists(lists: Sequence[Sequence[int]], rng: np.random.Generator) -> list[tuple[int, int]]:
    """Their ``merge_ranking_list``: the lists' items interleaved at random slots, each list keeping its order;
    duplicates dropped (first kept). Returns (item, index of the list it came from) pairs."""
    lists = [list(x) for x in lists]
    bounds = np.cumsum([len(x) for x in lists])
    if not bounds[-1]:
        return []
    slots = rng.permutation(bounds[-1])
    merged = np.empty(bounds[-1], dtype=np.int64)
    source = np.empty(bounds[-1], dtype=np.int64)
    for k, (items, idx) in enumerate(zip(lists, np.split(slots, bounds[:-1]))):
        merged[np.sort(idx)] = items
        source[idx] = k
    first = dict(reversed(list(zip(merged.tolist(), source.tolist()))))  # item -> source of its first occurrence
    return [(i, first[i]) for i in dict.fromkeys(merged.tolist())]


def position_prior(scenes: Sequence[ChoiceScene]) -> np.ndarray:
    """Uniform over every option but the last: the real item's possible positions in their scenes."""
    k = len(scenes[0].request.slate)
    p = np.zeros((len(scenes), k))
    p[:, : k - 1] = 1.0 / (k - 1)
    return p


# ------------------------------------------------------------------------------------------ scenes
def build_scenes(dataset: Dataset, config: UserMirrorerConfig | None = None) -> list[Scene]:
    """Scenes of held-out ``config.split`` users' real decisions, built as their released sampler builds eval scenes
    (module docstring); seeded, one ``numpy`` generator for every random step."""
    c = config or UserMirrorerConfig()
    rng = np.random.default_rng([c.seed, 24])
    cat = _Catalogue.of(dataset)
    pool = [(int(u), j) for u in dataset.users(c.split)
            for j in range(c.min_order, int(dataset.user_ptr[u + 1] - dataset.user_ptr[u]))]
    if not pool:
        raise ValueError(f"No {c.split!r} user of {dataset.name!r} has more than {c.min_order} interactions.")
    picks = [pool[i] for i in rng.choice(len(pool), min(c.n_scenes, len(pool)), replace=False)]
    collab = collaborative_embedding(dataset, c.n_components)
    content = content_embedding(dataset, cat)
    rows = np.zeros((len(picks), dataset.n_items))
    for s, (u, _) in enumerate(picks):  # the user's full row: future items and the target included
        rows[s, dataset.inter_item[dataset.history(u)]] = 1.0
    collab_scores = rows @ collab @ collab.T
    scenes = []
    for s, (u, j) in enumerate(picks):
        h = dataset.history(u)
        target, t = int(dataset.inter_item[h.start + j]), float(dataset.inter_time[h.start + j])
        ranked = [rng.permutation(dataset.n_items)[: c.top_k],  # random scores' top k
                  _top(collab_scores[s], c.top_k), _top(content[target] @ content.T, c.top_k)]
        seen = set(dataset.inter_item[h].tolist())
        kept = [(i, k) for i, k in merge_ranking_lists(ranked, rng)
                if not (np.isfinite(cat.release[i]) and cat.release[i] > t) and i not in seen][: c.n_options - 1]
        if len(kept) < c.n_options - 1:
            continue
        pos = int(rng.integers(0, len(kept)))  # their randint(0, len - 1): never the last option
        items, sources = [i for i, _ in kept], [SOURCES[k] for _, k in kept]
        options, sources = items[:pos] + [target] + items[pos:], sources[:pos] + ["target"] + sources[pos:]
        memory = int(rng.integers(c.memory[0], c.memory[1] + 1))
        scenes.append(_scene(dataset, cat, u, j, t, options, tuple(sources), memory))
    return scenes


def _top(scores: np.ndarray, k: int) -> np.ndarray:
    order = np.argsort(-scores, kind="stable")
    return order[:k]


def _scene(dataset: Dataset, cat: _Catalogue, user: int, position: int, timestamp: float, options: Sequence[int],
           sources: tuple[str, ...], memory: int) -> Scene:
    """The page request: memory = the user's last ``memory`` interactions strictly before ``timestamp``."""
    h = dataset.history(user)
    before = int(np.searchsorted(dataset.inter_time[h], timestamp, side="left"))  # histories are in time order
    req = SimulationRequest.from_history(dataset, user, before, np.asarray(options, np.int64), "page", memory)
    return Scene(ChoiceScene(user, position, req, sources.index("target"), sources), timestamp,
                 tuple(cat.line(int(i), timestamp) for i in options))


# ------------------------------------------------------------------------- their scene files
def _profile_text(dataset: Dataset, user: int) -> str:
    lines = ["## User Profile"]
    for name, ftype in dataset.user_field_types.items():
        if ftype == "token" and not name.lower().endswith("id"):
            lines.append(f"{name.replace('_', ' ').title()}: {dataset.user_fields[name][user]}")
    return "\n".join(lines) + "\n"


def _history_text(dataset: Dataset, cat: _Catalogue, r: SimulationRequest, timestamp: float) -> str:
    """Their ``template_history`` entries for the request's memory, oldest first."""
    out = []
    for i, t, ratio in zip(r.history_items, r.history_time, r.history_watch_ratio):
        rating = f"{float(dataset.rating_of_ratio(np.array([ratio]))[0]):.1f}/5.0" if dataset.has_ratings else "Not Rated"
        out.append(f"A movie viewed {int((timestamp - t) // 86400)} days before\n{cat.titles[int(i)]} {cat.genres[int(i)]} \n"
                   f"My Behavior:\nRating: {rating}\n")
    return "\n".join(out)


def save_scenes(path: str | Path, scenes: Sequence[Scene], dataset: Dataset) -> Path:
    """Write ``scenes`` as their eval file (one JSON object per line: ``text`` {profile, action_list, history},
    ``user_id``, ``item_id``, ``timestamp`` in epoch milliseconds, ``item_pos``, ``choice_cnt``, ``dataset``)."""
    cat, path = _Catalogue.of(dataset), Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        for s in scenes:
            r = s.choice.request
            row = {"text": {"profile": _profile_text(dataset, r.user), "action_list": [line + " \n" for line in s.lines],
                            "history": _history_text(dataset, cat, r, s.timestamp)},
                   "user_id": dataset.user_tokens[r.user], "item_id": dataset.item_tokens[int(r.slate[s.choice.target])],
                   "timestamp": int(round(s.timestamp * 1000)), "item_pos": s.choice.target, "choice_cnt": len(r.slate),
                   "dataset": dataset.name, "impression_list": [dataset.item_tokens[int(i)] for i in r.slate]}
            f.write(json.dumps(row) + "\n")
    return path


def _seconds(value) -> float:
    if isinstance(value, (int, float)):
        return float(value) / 1000.0 if value > 1e11 else float(value)  # pandas' to_json writes epoch milliseconds
    return datetime.fromisoformat(str(value)).replace(tzinfo=timezone.utc).timestamp()


def released_scenes_path(dataset: str) -> Path:
    """Where ``recsim eval-simulator --protocol usermirrorer`` looks for their released eval scenes of ``dataset``
    when no ``--scenes`` is given: ``$RECSIM_CACHE/usermirrorer/<dataset>_eval.jsonl``."""
    from recsim_env.data import cache_dir

    return cache_dir() / "usermirrorer" / f"{dataset}_eval.jsonl"


def load_scenes(path: str | Path, dataset: Dataset) -> list[Scene]:
    """Their eval file (``save_scenes``'s format, as their ``scene_sampling.py --eval_set`` writes it) as scenes on
    ``dataset``: users and target items by id, the other options by id (``impression_list``) or else by their item
    line, the memory as the user's last
    ``n`` real interactions before the timestamp (``n`` = the history entries in their text)."""
    cat = _Catalogue.of(dataset)
    by_line: dict[str, int] = {}
    for i in range(dataset.n_items):
        by_line.setdefault(f"{cat.titles[i]} - {cat.genres[i]}", i)
    users = {tok: u for u, tok in enumerate(dataset.user_tokens)}
    items = {tok: i for i, tok in enumerate(dataset.item_tokens)}
    scenes, unmatched = [], []
    with Path(path).open() as f:
        for n, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                row = json.loads(raw)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{n}: not JSON ({e}); expected one scene object per line.") from None
            if not isinstance(row, dict):
                raise ValueError(f"{path}:{n}: expected a JSON object per line, got {type(row).__name__}.")
            if row.get("dataset", dataset.name) != dataset.name:  # their eval set mixes datasets
                continue
            missing = {"text", "user_id", "item_id", "timestamp", "item_pos"} - set(row)
            if not missing and not (isinstance(row["text"], dict) and {"action_list", "history"} <= set(row["text"])):
                missing = {"text.action_list", "text.history"}
            if missing:
                raise ValueError(f"{path}:{n}: not a UserMirrorer eval scene: no {sorted(missing)} (expected their "
                                 "scene_sampling.py --eval_set output).")
            user, target = users.get(str(row["user_id"])), items.get(str(row["item_id"]))
            pos = int(row["item_pos"])
            if "impression_list" in row:  # written by save_scenes: the options' ids
                options = [items.get(str(i)) for i in row["impression_list"]]
            else:  # their file: by item line (two items sharing a line read as the first); the real item by its id
                shown = [line.strip().removeprefix(NEW_RELEASE) for line in row["text"]["action_list"]]
                options = [by_line.get(line) for line in shown]
                if target is not None and 0 <= pos < len(shown) and shown[pos] == f"{cat.titles[target]} - {cat.genres[target]}":
                    options[pos] = target
            if user is None or target is None or None in options or not 0 <= pos < len(options) or options[pos] != target:
                unmatched.append(n)
                continue
            ts = _seconds(row["timestamp"])
            sources = tuple("target" if k == pos else "their file" for k in range(len(options)))
            h = dataset.history(user)
            j = int(np.searchsorted(dataset.inter_time[h], ts, side="left"))
            scenes.append(_scene(dataset, cat, user, j, ts, options, sources, row["text"]["history"].count("My Behavior:")))
    if not scenes and not unmatched:
        raise ValueError(f"{path} holds no scene of dataset {dataset.name!r} (its rows name another \"dataset\").")
    if unmatched:
        raise ValueError(f"{len(unmatched)} of {len(unmatched) + len(scenes)} scenes in {path} do not match "
                         f"{dataset.name!r} (unknown user or item id, an option line no item has, or item_pos not on "
                         f"item_id; first at line {unmatched[0]}). Score their files on the dataset they were built "
                         "from (their ML-1M scenes: --dataset ml-1m).")
    return scenes


# ------------------------------------------------------------------------------------------ scoring
@contextmanager
def _their_lines(contender: Contender, scenes: Sequence[Scene]):
    """While scoring, an LLM simulator's prompt shows each scene's options as their item lines."""
    builder = getattr(contender.simulator, "scenes", None)
    if not hasattr(builder, "option_lines"):
        yield
        return
    lines = {id(s.choice.request): list(s.lines) for s in scenes}
    before = builder.option_lines
    builder.option_lines = lambda r: lines.get(id(r))
    try:
        yield
    finally:
        builder.option_lines = before


def evaluate(scenes: Sequence[Scene], contenders: Sequence[Contender], config: UserMirrorerConfig | None = None,
             progress: bool = False) -> dict:
    """Per contender: expected accuracy (mean probability of the real item) with its standard error over scenes, the
    seeded ``repeats``-sample estimate their ``run_eval`` computes, argmax accuracy (ties split) and log-loss; plus the
    scenes' make-up (distractor sources, real-item positions)."""
    from tqdm.auto import tqdm

    c = config or UserMirrorerConfig()
    if not scenes:
        raise ValueError("No scenes to score.")
    choice = [s.choice for s in scenes]
    targets = np.array([s.target for s in choice])
    n, k = len(scenes), len(choice[0].request.slate)
    rows = {}
    every = [*contenders, Contender("position prior (options A-D, never E)", position_prior)]
    for contender in tqdm(every, desc="usermirrorer: contenders", disable=not progress):
        if contender.choice is None:
            continue
        with _their_lines(contender, scenes):
            probs = np.asarray(contender.choice(choice), np.float64)
        m = choice_metrics(probs, targets)
        hit = probs[np.arange(n), targets]
        m["expected_accuracy_se"] = float(hit.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
        rng = np.random.default_rng([c.seed, 25])
        u = rng.random((n, c.repeats))[..., None]
        draws = (u > np.cumsum(probs / probs.sum(1, keepdims=True), 1)[:, None, :]).sum(2)
        sampled = (draws == targets[:, None]).mean(1)
        m["sampled_accuracy"] = float(sampled.mean())
        m["sampled_accuracy_se"] = float(sampled.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
        rows[contender.name] = m
    sources = [x for s in choice for j, x in enumerate(s.sources) if j != s.target]
    return {"config": {**c.__dict__, "memory": list(c.memory)}, "n_scenes": n, "n_options": k, "rows": rows,
            "distractor_sources": {x: sources.count(x) / len(sources) for x in sorted(set(sources))},
            "target_positions": np.bincount(targets, minlength=k).tolist(),
            "memory_mean": float(np.mean([len(s.request.history_items) for s in choice]))}


def format_results(results: dict, dataset: str, command: str, source: str) -> str:
    """Markdown: the accuracy table with their published figures in its own row, and what the scenes are made of."""
    r = results
    lines = [f"# UserMirrorer protocol: 5-option choice on {source} ({dataset})", "", f"Command: `{command}`", "",
             f"{r['n_scenes']} scenes, {r['n_options']} options each; the real item's position counts "
             f"{dict(zip('ABCDEFGHIJ', r['target_positions']))}; distractors by source "
             + ", ".join(f"{k} {v:.0%}" for k, v in r["distractor_sources"].items())
             + f"; memory {r['memory_mean']:.1f} items on average. Expected accuracy: mean probability of the real "
             f"item, +- one standard error over scenes; sampled: {r['config']['repeats']} seeded draws per scene, as "
             "their run_eval scores. Scene builder and every choice: `benchmarks/protocols/usermirrorer.py`.", "",
             "| contender | expected accuracy | sampled accuracy | argmax accuracy | log-loss |",
             "| --- | --- | --- | ---: | ---: |"]
    for name, m in r["rows"].items():
        lines.append(f"| {name} | {m['expected_accuracy']:.3f} +- {m['expected_accuracy_se']:.3f} | "
                     f"{m['sampled_accuracy']:.3f} +- {m['sampled_accuracy_se']:.3f} | {m['accuracy']:.3f} | "
                     f"{m['log_loss']:.2f} |")
    lines += [f"| *published (their ML-1M scenes, sampled scoring)* | {PUBLISHED} | | | |", "",
              f"Chance is {1 / r['n_options']:.2f}. The popularity row is the sanity check: on these scenes most "
              "distractors are random catalogue items, so the most popular option is often the real one.", ""]
    return "\n".join(lines) + "\n"


def plot_results(results: dict, path) -> None:
    """Expected accuracy per contender with one standard error, chance and the published figures as lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results["rows"])
    acc = [results["rows"][n]["expected_accuracy"] for n in names]
    se = [results["rows"][n]["expected_accuracy_se"] for n in names]
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(names) + 1.8))
    ax.barh(range(len(names)), acc, xerr=se, color="tab:blue", alpha=0.8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.invert_yaxis()
    ax.axvline(1 / results["n_options"], color="grey", ls=":", label="chance")
    for value, label, style in ((0.233, "published Llama-3.2-3B", "--"), (0.673, "published UserMirrorer", "-")):
        ax.axvline(value, color="tab:red", ls=style, lw=1, label=f"{label} {value:.1%} (ML-1M)")
    ax.set_xlabel("expected accuracy (mean probability of the real item)")
    ax.set_xlim(0, 1)
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title("UserMirrorer protocol (their scene builder), held-out users", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run(names: Sequence[str], dataset_name: str, config: UserMirrorerConfig, out: str | None, command: str,
        scenes_path: str | None = None, save_path: str | None = None) -> dict:
    """Score the named contenders (``benchmarks.fidelity.contenders_for``) on their released eval file ``scenes_path``
    (default: :func:`released_scenes_path` if it exists), else on scenes built here; print the table and write ``out.{md,json,png}`` (and the scenes to ``save_path``)."""
    from benchmarks.fidelity import contenders_for
    from benchmarks.report import publish
    from recsim_env.data import load_dataset

    ds = load_dataset(dataset_name)
    if scenes_path is None and released_scenes_path(ds.name).is_file():
        scenes_path = str(released_scenes_path(ds.name))
        print(f"scoring their released scenes found at {scenes_path} (pass --scenes to choose another file)")
    scenes = load_scenes(scenes_path, ds) if scenes_path else build_scenes(ds, config)
    source = f"their released scenes ({Path(scenes_path).name})" if scenes_path else f"held-out {config.split} users' scenes built with their sampler"
    if save_path:
        print(f"wrote {save_scenes(save_path, scenes, ds)}")
    results = evaluate(scenes, contenders_for(names, ds, config.seed), config, progress=True)
    results.update(command=command, scenes=scenes_path or "built")
    text = format_results(results, ds.name, command, source)
    return publish(text, results, out, plot_results)
