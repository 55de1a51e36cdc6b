"""Scenes for the LLM user simulator (UserMirrorer-style): memory, then an exposure list.

A prompt is three pieces so that the scorer can reuse computation:

1. the **system** text, identical for every request of a simulator (its KV cache is computed once);
2. the **user context**: profile and chronological history with relative times and the user's own
   behaviour (rating / watch ratio / skip) -- one per request;
3. a **question** suffix ending right before the answer letter, e.g. ``... Behavior: [``.

Page mode shows the slate as ``[A] ... [B] ...`` plus a final "None of these" option and asks for
one letter. Feed mode asks per item: watch or skip (judge); then, for a skip, the reason class from
the taxonomy (default G-UBS: content-driven, algorithm-driven, user-driven); for a watch, the rating
(datasets with ratings) or the watched fraction (datasets with play time). Item facts shown
(mean rating, number of ratings) come from the train split only.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from recsim_env.data import Dataset
from recsim_env.features import item_features
from simulators.base import SimulationRequest

__all__ = ["ChatFormat", "ReasonClass", "SceneBuilder", "GUBS_TAXONOMY", "LETTERS", "item_kind", "item_text"]

LETTERS = string.ascii_uppercase
PAGE_PREFIX, JUDGE_PREFIX = "Behavior: [", "Judge: ["
REASON_PREFIX, RATING_PREFIX, WATCHED_PREFIX = "Reason: [", "Rating: [", "Watched: ["
ANSWER_FORMATS = ("letters", "think")
# The "think" format (GRPO's): the question asks for <think>...</think><answer>...</answer>; the scored answer
# starts after an empty thinking text, as the format warm-up trained it.
THINK_FORMAT = ("Think as this user inside <think></think>, then answer inside <answer></answer> with {what}. "
                "Example: <think>...</think><answer>{example}</answer>")
THINK_ANSWER = "<think></think><answer>"
THINK_JUDGE_PREFIX, THINK_JUDGE_LABELS = THINK_ANSWER + "Judge:", (" watch", " skip")


@dataclass(frozen=True)
class ReasonClass:
    name: str
    description: str


GUBS_TAXONOMY = (
    ReasonClass("content-driven", "the item itself is unappealing"),
    ReasonClass("algorithm-driven", "it does not fit my interests or repeats what I saw"),
    ReasonClass("user-driven", "fine, but not now (mood, time)"),
)

# Watched-fraction bins for datasets with real play time: (label, low, high).
WATCH_BINS = (("about a third", 0.3, 0.5), ("about half", 0.5, 0.7), ("most of it", 0.7, 0.9), ("all of it", 0.9, 1.0))


class ChatFormat:
    """The chat template's pieces, read off the tokenizer by rendering sentinels.

    Falls back to a plain ``System:/User:/Assistant:`` layout for tokenizers without a template.
    """

    def __init__(self, tokenizer) -> None:
        s, u, a, u2 = "\x00S\x00", "\x00U\x00", "\x00A\x00", "\x00V\x00"
        template = getattr(tokenizer, "chat_template", None)
        if template:
            msgs = [{"role": "system", "content": s}, {"role": "user", "content": u}]
            one = tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
            two = tokenizer.apply_chat_template(
                msgs + [{"role": "assistant", "content": a}, {"role": "user", "content": u2}],
                tokenize=False, add_generation_prompt=True,
            )
            self.system_open, rest = one.split(s)
            self.user_open, self.assistant_open = rest.split(u)
            self.next_user = two.split(a)[1].split(u2)[0]
        else:
            self.system_open, self.user_open = "System: ", "\n\nUser: "
            self.assistant_open, self.next_user = "\n\nAssistant: ", "\n\nUser: "

    def system(self, text: str) -> str:
        return self.system_open + text + self.user_open

    def ask(self, question: str, answer_prefix: str) -> str:
        """Close the user turn with ``question`` and open the assistant turn with ``answer_prefix``."""
        return question + self.assistant_open + answer_prefix

    def follow_up(self, answer: str, question: str, answer_prefix: str) -> str:
        """Finish the assistant answer, ask another question, open the next answer."""
        return answer + self.next_user + question + self.assistant_open + answer_prefix


def _relative(seconds: float) -> str:
    if np.isnan(seconds):
        return "earlier in this session"
    days = seconds / 86400
    if days < 1:
        return "today"
    if days < 14:
        return f"{int(days)} day{'s' if int(days) > 1 else ''} ago"
    if days < 60:
        return f"{int(days // 7)} weeks ago"
    if days < 730:
        return f"{int(days // 30)} months ago"
    return f"{int(days // 365)} years ago"


def item_kind(dataset: Dataset) -> str:
    """'movies' for MovieLens-like datasets, else 'items' (the noun the prompts use)."""
    return "movies" if dataset.name.startswith("ml-") or any("movie" in f.lower() for f in dataset.item_field_types) else "items"


def item_text(dataset: Dataset, i: int, feats=None) -> str:
    """One line describing item ``i`` from its fields (title, year, genres ...); with ``feats``
    (:func:`~recsim_env.features.item_features`) also its train mean rating and number of viewers."""
    title, extras = item_facts(dataset, i, feats)
    return f"{title} ({'; '.join(extras)})" if extras else title


def item_facts(dataset: Dataset, i: int, feats=None) -> tuple[str, list[str]]:
    """(title, other facts) of item ``i`` as :func:`item_text` shows them."""
    ds = dataset
    title, extras = None, []
    for name, ftype in ds.item_field_types.items():
        value = ds.item_fields[name][i]
        text = " ".join(value) if isinstance(value, list) else str(value)
        low = name.lower()
        if not text or "video" in low or low.endswith("path"):  # file locations are not what a user sees
            continue
        if title is None and ("title" in low or "name" in low):
            title = text
        elif ftype in ("token", "token_seq") and ("class" in low or "genre" in low or "categor" in low or "tag" in low):
            extras.append(text.replace(" ", ", "))
        elif "year" in low:
            extras.insert(0, text)
        elif ftype in ("token", "token_seq") and len(text) < 60:
            extras.append(f"{name}: {text}")
    title = title or f"{item_kind(ds)[:-1]} {ds.item_tokens[i]}"
    n = int(feats.count[i]) if feats is not None else 0
    if ds.has_ratings and n:
        lo, hi = ds.rating_range
        extras.append(f"avg {lo + feats.mean_rating[i] * (hi - lo):.1f}/{hi:g} from {n} viewers")
    elif n:
        extras.append(f"{n} viewers")
    return title, extras


@dataclass
class SceneBuilder:
    """Turns requests into prompt pieces for one dataset (template derived from its fields)."""

    dataset: Dataset
    chat: ChatFormat
    history_in_prompt: int = 10
    taxonomy: tuple[ReasonClass, ...] = GUBS_TAXONOMY
    answer_format: str = "letters"
    memory_growth: int = 0
    captions: dict[int, str] | None = None  # item index -> perceived video caption (simulators.perception)
    # A request's option lines as an evaluation protocol shows them (e.g. UserMirrorer's item line), or None for
    # this builder's own item texts.
    option_lines: Callable[[SimulationRequest], Sequence[str] | None] | None = None
    item_texts: list[str] = field(init=False)
    user_texts: list[str] = field(init=False)

    def __post_init__(self) -> None:
        if self.history_in_prompt < 0:
            raise ValueError(f"history_in_prompt must be >= 0, got {self.history_in_prompt}.")
        if self.memory_growth < 0:
            raise ValueError(f"memory_growth must be >= 0, got {self.memory_growth}.")
        if self.answer_format not in ANSWER_FORMATS:
            raise ValueError(f"answer_format must be one of {ANSWER_FORMATS}, got {self.answer_format!r}.")
        ds = self.dataset
        self.kind = item_kind(ds)
        feats = item_features(ds)
        self.item_texts = [self._item_text(i, feats) for i in range(ds.n_items)]
        for i, caption in (self.captions or {}).items():  # what the video shows, as perceived once per item
            self.item_texts[i] += f". Video: {caption}"
        self.item_names = [self._item_text(i, feats, stats=False) for i in range(ds.n_items)]  # memory lines: no train stats
        self.user_texts = [self._user_text(u) for u in range(ds.n_users)]
        self.rated = ds.watch_ratio_source == "rating proxy"
        if self.rated:
            lo, hi = ds.rating_range
            self.levels = np.arange(lo, hi + 1)
            if len(self.levels) > len(LETTERS) - 1 or not np.allclose(self.levels, np.round(self.levels)):
                self.levels = np.linspace(lo, hi, 5)
        if self.rated:
            scale = ", ".join(f"[{LETTERS[j]}] {lvl:g} star{'s' if lvl != 1 else ''}" for j, lvl in enumerate(self.levels))
            value = f"If you watch it, give your rating: {scale}."
        else:
            scale = ", ".join(f"[{LETTERS[j]}] {label}" for j, (label, _, _) in enumerate(WATCH_BINS))
            value = f"If you watch it, say how much you watched: {scale}."
        reasons = "; ".join(f"[{LETTERS[j]}] {c.name}: {c.description}" for j, c in enumerate(self.taxonomy))
        self.system_text = (
            f"You are a real user of a {self.kind[:-1]} recommender. Given your profile and history, answer as this user, "
            f"with letters only. For a list: the item you click, or 'None of these'. For a feed item: [A] watch or "
            f"[B] skip within seconds; if skipped, the reason: {reasons}. {value}"
        )

    # ------------------------------------------------------------------------------- texts
    def _item_text(self, i: int, feats, stats: bool = True) -> str:
        return item_text(self.dataset, i, feats if stats else None)

    def _user_text(self, u: int) -> str:
        ds = self.dataset
        parts = []
        for name, ftype in ds.user_field_types.items():
            if ftype != "token" or "zip" in name.lower() or "id" == name.lower()[-2:]:
                continue
            value = ds.user_fields[name][u]
            if name == "age" and value.isdigit():
                value = f"{int(value) // 10 * 10}s"
            parts.append(f"{name.replace('_', ' ')}: {value}")
        return ", ".join(parts) if parts else "no profile information"

    def behaviour(self, ratio: float, skipped: bool) -> str:
        if np.isnan(ratio):
            return "you skipped it" if skipped else "you watched it"
        if self.rated:
            rating = float(self.dataset.rating_of_ratio(np.array([ratio]))[0])
            return f"you rated it {rating:.0f}/{self.dataset.rating_range[1]:g}"
        return "you skipped it quickly" if skipped else f"you watched {min(ratio, 1.0):.0%}"

    # ----------------------------------------------------------------------------- prompts
    def system(self) -> str:
        return self.chat.system(self.system_text)

    def shown_memory(self, r: SimulationRequest) -> np.ndarray:
        """Indices into ``r.history_items`` of the memory lines the prompt shows, oldest first.

        ``memory_growth`` 0: the last ``history_in_prompt`` items (a sliding window: every new item changes the first
        line). G > 0: an append-only window: it starts at a multiple of G + 1 of the user's item count
        (``r.history_count``) and grows by each new item up to ``history_in_prompt + G`` lines, then starts again
        with the last ``history_in_prompt``; between restarts each context extends the previous one, so its kept KV
        is reused (:class:`~simulators.llm.scoring.KVStore`). Needs ``history_count`` (else it slides).
        """
        valid = np.flatnonzero(np.asarray(r.history_items) >= 0)
        h, g = self.history_in_prompt, self.memory_growth
        if not h:
            return valid[:0]
        if not g or r.history_count is None:
            return valid[-h:]
        total = int(r.history_count)
        first = max(0, (total - h) // (g + 1) * (g + 1))  # absolute index of the first shown item
        return valid[-min(total - first, len(valid)) :] if total > first else valid[:0]

    def context(self, r: SimulationRequest) -> str:
        """Profile and the shown memory items (:meth:`shown_memory`), oldest first."""
        valid = self.shown_memory(r)
        times = r.history_time if r.history_time is not None else np.full(len(r.history_items), np.nan)
        real = times[~np.isnan(times)] if len(times) else np.array([])
        now = real.max() if len(real) else np.nan
        lines = [f"My profile: {self.user_texts[r.user]}.", f"{self.kind.capitalize()} I watched, oldest first:"]
        for h in valid:
            when = _relative(now - times[h]) if not np.isnan(times[h]) else _relative(np.nan)
            lines.append(
                f"- {self.item_names[int(r.history_items[h])]}; {when}; "
                f"{self.behaviour(float(r.history_watch_ratio[h]), bool(r.history_skipped[h]))}"
            )
        if not len(valid):
            lines.append("- nothing yet")
        return "\n".join(lines) + "\n"

    def page_listing(self, r: SimulationRequest) -> tuple[str, int]:
        """The exposure list with a final 'None of these' and the question; returns (text, number of options)."""
        k = len(r.slate)
        if k + 1 > len(LETTERS):
            raise ValueError(f"Page mode labels options A-Z: slate_size must be <= {len(LETTERS) - 1}, got {k}.")
        shown = self.option_lines(r) if self.option_lines is not None else None
        if shown is None:
            shown = [self.item_texts[int(item)] for item in r.slate]
        elif len(shown) != k:
            raise ValueError(f"option_lines gave {len(shown)} lines for a slate of {k} items.")
        lines = ["The recommender shows you now:"]
        lines += [f"[{LETTERS[j]}] {text}" for j, text in enumerate(shown)]
        lines.append(f"[{LETTERS[k]}] None of these")
        lines.append("Which one do you click?")
        return "\n".join(lines), k + 1

    def page_question(self, r: SimulationRequest) -> tuple[str, int]:
        """The page question in this builder's answer format (the think format asks for 'Choice: [X]')."""
        listing, n = self.page_listing(r)
        if self.answer_format == "letters":
            return listing, n
        return listing + "\n" + THINK_FORMAT.format(what="'Choice: [X]', the letter of the item you click", example="Choice: [C]"), n

    def page_branch(self, r: SimulationRequest) -> tuple[str, int]:
        """The page question with the answer opened up to the option letter; returns (branch text, number of options)."""
        question, n = self.page_question(r)
        return self.chat.ask(question, self.page_prefix), n

    def feed_question(self, item: int) -> str:
        """The judge question for one item playing in the feed, in this builder's answer format."""
        shown = f"In your feed now: {self.item_texts[item]}"
        if self.answer_format == "letters":
            return shown
        reasons = ", ".join(f"[{LETTERS[j]}] {c.name}" for j, c in enumerate(self.taxonomy))
        what = f"'Judge: watch', or 'Judge: skip; Reason: [X]' with the reason letter ({reasons})"
        return shown + "\n" + THINK_FORMAT.format(what=what, example="Judge: skip; Reason: [B]")

    def feed_branch(self, item: int) -> str:
        """The judge question with the answer opened up to the judgement."""
        return self.chat.ask(self.feed_question(item), self.judge_prefix)

    @property
    def page_prefix(self) -> str:
        """The answer start right before a page option letter."""
        return PAGE_PREFIX if self.answer_format == "letters" else THINK_ANSWER + "Choice: ["

    @property
    def judge_prefix(self) -> str:
        """The answer start right before the feed judgement."""
        return JUDGE_PREFIX if self.answer_format == "letters" else THINK_JUDGE_PREFIX

    @property
    def judge_labels(self) -> tuple[str, str]:
        """The (watch, skip) answers that follow :meth:`feed_branch`."""
        return ("A", "B") if self.answer_format == "letters" else THINK_JUDGE_LABELS

    @property
    def value_prefix(self) -> str:
        return RATING_PREFIX if self.rated else WATCHED_PREFIX

    @property
    def n_values(self) -> int:
        return len(self.levels) if self.rated else len(WATCH_BINS)

    def follow_up(self, letter: int, skipped: bool | None = None) -> str:
        """After the answer ``letter`` (a page option; in feed mode 0 = watch, 1 = skip): the reason question
        (a skip) or the value question (a watch / click). The think format asks them as further answer fields."""
        if self.answer_format == "letters":
            return f"{LETTERS[letter]}] " + (REASON_PREFIX if skipped else self.value_prefix)
        if skipped is None:
            return f"{LETTERS[letter]}]; {self.value_prefix}"
        return f"{THINK_JUDGE_LABELS[letter]}; " + (REASON_PREFIX if skipped else self.value_prefix)

    def value_to_ratio(self, option: int, u: float) -> tuple[float, float]:
        """(watch ratio, rating) for an answer to :meth:`value_question`; ``u`` in [0, 1) places it in its bin."""
        if self.rated:
            rating = float(self.levels[option])
            lo, hi = self.dataset.rating_range
            return (rating - lo) / (hi - lo), rating
        _, low, high = WATCH_BINS[option]
        return low + (high - low) * u, float("nan")

    def value_answer(self, ratio: float, rating: float = float("nan")) -> int:
        """The answer to the value question for a real reaction (inverse of :meth:`value_to_ratio`)."""
        if self.rated:
            if np.isnan(rating):
                lo, hi = self.dataset.rating_range
                rating = lo + ratio * (hi - lo)
            return int(np.argmin(np.abs(self.levels - rating)))
        lows = np.array([low for _, low, _ in WATCH_BINS])
        return int(max(0, np.searchsorted(lows, min(float(ratio), 1.0), side="right") - 1))

    def decision_process_prompt(self, r: SimulationRequest, item: int | None, clicked: bool) -> tuple[str, str]:
        """(full prompt, answer start) for UserMirrorer's decision process: Stimulus, Knowledge, Evaluation."""
        if item is None:
            what = "You clicked none of the recommended items."
        else:
            what = f'You {"watched" if clicked else "skipped"} "{self.item_names[item]}".'
        q = (f"{what} Explain your decision in three short parts: Stimulus (what caught your attention), Knowledge "
             f"(what you know about it and your tastes), Evaluation (how you weighed it).")
        return self.system() + self.context(r) + self.chat.ask(q, "Stimulus:"), "Stimulus:"

    def reason_prompt(self, r: SimulationRequest, item: int | None, clicked: bool) -> tuple[str, str]:
        """(full prompt, answer start) asking for a short first-person reason (generated, not scored)."""
        if item is None:
            q, start = "You clicked none of the recommended items. Why? One short sentence, first person.", "I clicked none because"
        elif clicked:
            q, start = f'You watched "{self.item_names[item]}". Why? One short sentence, first person.', "I watched it because"
        else:
            q, start = f'You skipped "{self.item_names[item]}" within seconds. Why? One short sentence, first person.', "I skipped it because"
        return self.system() + self.context(r) + self.chat.ask(q, start), start
