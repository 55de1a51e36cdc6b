"""User groups (the UGM of the group-aware rewards): summarize, cluster, reflect, write profiles.

Without an LLM, every step is measured from the data:

1. **summarize** -- each user is a TF-IDF document of words: the tags/genres of the items they
   watched (``interest``), their profile tokens such as age decade, gender, occupation
   (``demographics``), or both. Spherical k-means (k-means++ seeding, seeded) over the documents
   gives ``k`` interest centroids; the user closest to each centroid is its representative.
2. **cluster** -- cosine similarity of every user's document to the representative's; the top
   ``top_n`` users (60) are the group's candidates. Users may land in several groups.
3. **reflect** -- a candidate stays when their *viewing history* agrees with the group profile:
   the cosine of their interest-only document with the centroid's interest part is at least
   ``min_agreement`` (in ``demographics`` mode the profile document is used). Groups left with
   fewer than ``min_size`` (10) users are dropped.
4. **profiles** -- per group: preference traits (the centroid's top terms with weights), a profile
   summary (the members' most common profile values and tags), and recommendation directions
   (terms over-represented in the group relative to all users: recommend; under-represented:
   avoid). :func:`write_groups` writes them as JSON.

With an LLM (``build_groups(..., llm=LLMUserSimulator(...))``, ``recsim build-groups --llm``), the
representative and the candidates are found as above, and the LLM does the words and the judging:

* **summarize** -- it writes the group's profile summary from the representative's profile, the
  centroid's top tags and the representative's best-rated items (greedy, ``summary_tokens``);
* **reflect** -- it judges each candidate: the group summary and top tags, then the candidate's
  last ``judge_history`` watched items, "does this viewer belong? [A] yes [B] no"; a candidate stays
  when P(yes) >= 0.5 (the agreement stored is P(yes)). ``summary_by`` records which model wrote it.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal, Sequence

import numpy as np

from recsim_env.data import Dataset

__all__ = ["GroupConfig", "UserGroup", "build_groups", "load_groups", "user_documents", "write_groups"]

TAG_WORDS = ("class", "genre", "categor", "tag")


@dataclass(frozen=True)
class GroupConfig:
    """k: groups summarized (before reflection drops small ones). mode: what a user's document holds.
    top_n: candidates per representative. min_agreement: reflect threshold (cosine). min_size: smallest group kept.
    split: whose users are grouped. iterations: k-means rounds."""

    k: int = 20
    mode: Literal["interest", "demographics", "both"] = "interest"
    top_n: int = 60
    min_agreement: float = 0.5
    min_size: int = 10
    split: str = "train"
    iterations: int = 30
    seed: int = 0
    summary_tokens: int = 48
    judge_history: int = 10

    def __post_init__(self) -> None:
        if self.mode not in ("interest", "demographics", "both"):
            raise ValueError(f"mode must be 'interest', 'demographics' or 'both', got {self.mode!r}.")
        if min(self.k, self.top_n, self.min_size, self.iterations, self.summary_tokens, self.judge_history) < 1:
            raise ValueError("k, top_n, min_size, iterations, summary_tokens and judge_history must be >= 1.")
        if not -1.0 <= self.min_agreement <= 1.0:
            raise ValueError(f"min_agreement is a cosine in [-1, 1], got {self.min_agreement}.")


@dataclass
class UserGroup:
    """One group: its representative, members (dataset user indices) and written profile."""

    group_id: int
    representative: int
    members: list[int]
    preference_traits: dict[str, float]
    profile_summary: str
    recommendation_directions: str
    agreement: dict[int, float] = field(default_factory=dict)  # member -> history-profile cosine, or the LLM judge's P(yes)
    summary_by: str = "data"  # "data", or the LLM that wrote the summary and judged the members


def _tags(dataset: Dataset) -> list[list[str]]:
    """Per item, its tag/genre tokens (fields named like class/genre/category/tag)."""
    names = [n for n, t in dataset.item_field_types.items() if t in ("token", "token_seq") and any(w in n.lower() for w in TAG_WORDS)]
    out = []
    for i in range(dataset.n_items):
        words = []
        for n in names:
            v = dataset.item_fields[n][i]
            words += list(v) if isinstance(v, list) else [str(v)]
        out.append([w for w in words if w])
    return out


def _profile_words(dataset: Dataset, u: int) -> list[str]:
    words = []
    for name, ftype in dataset.user_field_types.items():
        if ftype != "token" or "zip" in name.lower() or name.lower().endswith("id"):
            continue
        value = str(dataset.user_fields[name][u])
        if name == "age" and value.isdigit():
            value = f"{int(value) // 10 * 10}s"
        if value:
            words.append(f"{name}={value}")
    return words


def _tfidf(docs: Sequence[Counter]) -> tuple[np.ndarray, list[str]]:
    vocab = sorted({w for d in docs for w in d})
    col = {w: j for j, w in enumerate(vocab)}
    m = np.zeros((len(docs), len(vocab)))
    for i, d in enumerate(docs):
        for w, c in d.items():
            m[i, col[w]] = c
    df = (m > 0).sum(0)
    m = np.log1p(m) * np.log((1 + len(docs)) / (1 + df))[None, :]
    norms = np.linalg.norm(m, axis=1, keepdims=True)
    return np.divide(m, norms, out=np.zeros_like(m), where=norms > 0), vocab


def user_documents(dataset: Dataset, users: Sequence[int], mode: str) -> tuple[np.ndarray, list[str], np.ndarray]:
    """(users x terms) unit TF-IDF documents for ``mode``, the terms, and the interest-only documents (same terms)."""
    tags = _tags(dataset)
    interest, profile = [], []
    for u in users:
        h = dataset.history(u)
        watched = dataset.inter_item[h][~(dataset.inter_watch_ratio[h] < dataset.thresholds.skip_below)]
        interest.append(Counter(f"tag={w}" for i in watched for w in tags[int(i)]))
        profile.append(Counter(_profile_words(dataset, int(u))))
    docs = {"interest": interest, "demographics": profile, "both": [a + b for a, b in zip(interest, profile)]}[mode]
    matrix, vocab = _tfidf(docs)
    is_tag = np.array([w.startswith("tag=") for w in vocab])
    hist = np.where(is_tag[None, :], matrix, 0.0) if mode != "demographics" else matrix
    norms = np.linalg.norm(hist, axis=1, keepdims=True)
    return matrix, vocab, np.divide(hist, norms, out=np.zeros_like(hist), where=norms > 0)


def _spherical_kmeans(x: np.ndarray, k: int, iterations: int, rng: np.random.Generator) -> np.ndarray:
    """(k, d) unit centroids; k-means++ seeding on cosine distance."""
    centers = [x[rng.integers(len(x))]]
    for _ in range(1, k):
        d = np.clip(1 - np.max(x @ np.array(centers).T, axis=1), 0, None)
        p = d / d.sum() if d.sum() > 0 else np.full(len(x), 1 / len(x))
        centers.append(x[rng.choice(len(x), p=p)])
    c = np.array(centers)
    for _ in range(iterations):
        assign = np.argmax(x @ c.T, axis=1)
        new = np.array([x[assign == j].sum(0) if (assign == j).any() else c[j] for j in range(k)])
        new /= np.maximum(np.linalg.norm(new, axis=1, keepdims=True), 1e-12)
        if np.allclose(new, c):
            break
        c = new
    return c


def build_groups(dataset: Dataset, config: GroupConfig | None = None, llm=None) -> list[UserGroup]:
    """Summarize, cluster, reflect and write profiles (module docstring); groups sorted by size, largest first.

    ``llm``: an :class:`~simulators.llm.LLMUserSimulator` that writes the summaries and judges the
    members; None measures both from the data.
    """
    config = config or GroupConfig()
    users = np.asarray(dataset.users(config.split))
    if len(users) < config.k:
        raise ValueError(f"{len(users)} {config.split} users cannot form k={config.k} groups; lower k.")
    docs, vocab, hist = user_documents(dataset, users, config.mode)
    rng = np.random.default_rng(config.seed)
    centroids = _spherical_kmeans(docs, config.k, config.iterations, rng)
    population = docs.mean(0)
    groups = []
    for j, c in enumerate(centroids):
        rep = int(np.argmax(docs @ c))  # summarize: the user closest to the centroid
        candidates = np.argsort(-(docs @ docs[rep]), kind="stable")[: config.top_n]  # cluster
        if llm is None:
            profile = np.where(np.array([w.startswith("tag=") for w in vocab]), c, 0.0) if config.mode != "demographics" else c
            profile = profile / max(np.linalg.norm(profile), 1e-12)
            agreement = hist[candidates] @ profile  # reflect: the viewing history against the group profile
            keep = agreement >= config.min_agreement
        else:
            tags = _top_tags(vocab, c)
            summary = _llm_summary(llm, dataset, int(users[rep]), tags, config)
            agreement = _llm_judge(llm, dataset, summary, tags, users[candidates], config)
            keep = agreement >= 0.5
        members = candidates[keep]
        if len(members) < config.min_size:
            continue
        group = _profile(dataset, users, vocab, docs, members, rep, c, population, agreement[keep])
        if llm is not None:
            group.profile_summary, group.summary_by = summary, f"llm:{llm.model_name}" + (f"+{llm.adapter}" if llm.adapter else "")
        groups.append(group)
    groups.sort(key=lambda g: -len(g.members))
    for i, g in enumerate(groups):
        g.group_id = i
    return groups


def _top_tags(vocab: Sequence[str], centroid: np.ndarray, n: int = 5) -> list[str]:
    return [vocab[t].split("=", 1)[1] for t in np.argsort(-centroid)[:n] if centroid[t] > 0]


def _watched_titles(dataset: Dataset, u: int, n: int, best: bool) -> list[str]:
    """The user's last ``n`` watched items, or (``best``) the ``n`` they rated / watched most, as item texts."""
    from simulators.llm.prompts import item_text

    h = dataset.history(u)
    items, ratio = dataset.inter_item[h], dataset.inter_watch_ratio[h]
    watched = ~(ratio < dataset.thresholds.skip_below)
    items, score = items[watched], (dataset.inter_rating[h] if dataset.has_ratings else ratio)[watched]
    picked = items[np.argsort(-score, kind="stable")[:n]] if best else items[-n:]
    return [item_text(dataset, int(i)) for i in picked]


def _llm_summary(llm, dataset: Dataset, rep: int, tags: Sequence[str], config: GroupConfig) -> str:
    chat = llm.chat
    prompt = chat.system("You describe groups of viewers for a recommender system, in one or two plain sentences.") + chat.ask(
        f"A typical member: {'; '.join(_profile_words(dataset, rep)) or 'no profile'}. The group's most typical tags: "
        f"{', '.join(tags) or 'none'}. Items this member liked most: {'; '.join(_watched_titles(dataset, rep, 5, best=True))}. "
        "Describe this group's tastes.", "")
    return llm.generate([prompt], config.summary_tokens)[0].strip()


def _llm_judge(llm, dataset: Dataset, summary: str, tags: Sequence[str], candidates: Sequence[int], config: GroupConfig) -> np.ndarray:
    chat = llm.chat
    head = chat.system("You judge whether a viewer's history fits a group profile. Answer with a letter.")
    prompts = [head + chat.ask(
        f"Group profile: {summary} Typical tags: {', '.join(tags) or 'none'}.\nThis viewer recently watched:\n"
        + "\n".join(f"- {t}" for t in _watched_titles(dataset, int(u), config.judge_history, best=False))
        + "\nDoes this viewer belong to the group? [A] yes [B] no", "Answer: [") for u in candidates]
    return llm.letter_probs(prompts, 2, "Answer: [")[:, 0]


def _profile(dataset, users, vocab, docs, members, rep, centroid, population, agreement) -> UserGroup:
    top = np.argsort(-centroid)[:5]
    traits = {vocab[t]: round(float(centroid[t]), 3) for t in top if centroid[t] > 0}
    profile_counts = Counter(w for m in members for w in _profile_words(dataset, int(users[m])))
    common = [f"{w.split('=', 1)[1]} ({n / len(members):.0%})" for w, n in profile_counts.most_common(4)]
    tags = [vocab[t].split("=", 1)[1] for t in top if vocab[t].startswith("tag=") and centroid[t] > 0]
    lift = docs[members].mean(0) - population
    is_tag = np.array([w.startswith("tag=") for w in vocab])
    lift = np.where(is_tag, lift, 0.0) if is_tag.any() else lift  # directions are about items, not about people
    more = [vocab[t].split("=", 1)[1] for t in np.argsort(-lift)[:3] if lift[t] > 0]
    less = [vocab[t].split("=", 1)[1] for t in np.argsort(lift)[:3] if lift[t] < 0]
    summary = f"{len(members)} users; most common profile values: {', '.join(common) or 'none'}; they mostly watch {', '.join(tags) or 'varied items'}."
    directions = f"Recommend more {', '.join(more) or 'of what they watch'}; show less {', '.join(less) or 'of nothing in particular'}."
    return UserGroup(
        group_id=-1, representative=int(users[rep]), members=[int(users[m]) for m in members], preference_traits=traits,
        profile_summary=summary, recommendation_directions=directions,
        agreement={int(users[m]): round(float(a), 3) for m, a in zip(members, agreement)},
    )


def write_groups(groups: Sequence[UserGroup], path: str | Path, config: GroupConfig | None = None, command: str | None = None) -> None:
    """Groups as JSON (with the config, and the command where given, that built them); user ids are dataset indices."""
    data = {"config": asdict(config) if config else None, "command": command, "groups": [asdict(g) for g in groups]}
    Path(path).write_text(json.dumps(data, indent=2) + "\n")


def load_groups(path: str | Path) -> list[UserGroup]:
    data = json.loads(Path(path).read_text())
    return [UserGroup(**{**g, "agreement": {int(k): v for k, v in g["agreement"].items()}}) for g in data["groups"]]
