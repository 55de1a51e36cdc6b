"""GRPO reward functions for the simulator's generated answers, in TRL's reward-function signature.

A completion must read, and is parsed strictly (:func:`parse_completion`)::

    <think>the user's reasoning, free text</think><answer>Judge: skip; Reason: [B]</answer>

Only whitespace may stand outside the two tags. The answer holds ``Key: value`` fields separated by
``;`` or new lines, each key at most once:

* ``Judge:`` ``skip`` | ``watch`` (feed) or ``like`` | ``dislike`` (Agent4Rec / VRAgent-R1);
* ``Choice: [X]`` the chosen option's letter (page mode, next-item selection);
* ``Reason: [X]`` the reason-class letter of a skip, in the taxonomy's order
  (G-UBS: [A] content-driven, [B] algorithm-driven, [C] user-driven).

TRL calls every reward as ``f(prompts=..., completions=..., **columns)`` with the dataset's extra
columns as lists; these read:

* ``judge``: the real judgement (``skip``/``watch``/``like``/``dislike``; ``None``: not asked);
* ``choice``: the real option's index (``None``/-1: not asked), ``n_options``: letters allowed;
* ``reason``: the real reason-class index (``None``/-1: not labelled), ``n_reasons`` (default 3);
* ``reason_text``: the real reason in words (``None``/"": none exists).

A malformed completion never raises: it gets format reward 0, every task reward treats it as a wrong
answer, and :class:`FormatReward` counts it (``malformed`` attribute, and the ``malformed`` metric
TRL logs). A reward returns ``None`` where its truth is missing (TRL then ignores it for that row).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Sequence

__all__ = [
    "Answer", "ChoiceReward", "FormatReward", "JudgeReward", "MalformedCompletion", "ReasonReward", "RewardConfig",
    "StepwiseReward", "parse_completion", "reward_functions", "rouge_mean",
]

JUDGEMENTS = {"skip": False, "watch": True, "dislike": False, "like": True}  # -> positive feedback?
_COMPLETION = re.compile(r"\s*<think>(.*?)</think>\s*<answer>(.*?)</answer>\s*", re.DOTALL)
_FIELD = re.compile(r"^(Judge|Choice|Reason)\s*:\s*(.+?)$")
_LETTER = re.compile(r"^\[([A-Z])\]$")


class MalformedCompletion(ValueError):
    """The completion does not follow ``<think>...</think><answer>...</answer>`` with valid fields."""


@dataclass(frozen=True)
class Answer:
    """A parsed completion: the thinking text and the fields present (None: absent)."""

    think: str
    judge: str | None = None
    choice: int | None = None
    reason: int | None = None

    @property
    def positive(self) -> bool | None:
        """Whether the judgement is positive feedback (watch/like), None without one."""
        return None if self.judge is None else JUDGEMENTS[self.judge]


def parse_completion(text: str, n_options: int | None = None, n_reasons: int | None = None) -> Answer:
    """Parse one completion strictly; raises :class:`MalformedCompletion` saying what is wrong.

    ``n_options`` / ``n_reasons`` bound the letters accepted for ``Choice`` / ``Reason``.
    """
    m = _COMPLETION.fullmatch(text)
    if m is None:
        raise MalformedCompletion("expected '<think>...</think><answer>...</answer>' and nothing else around them")
    think, body = m.group(1).strip(), m.group(2)
    if "<think>" in think or "<answer>" in body or "</think>" in body:
        raise MalformedCompletion("nested or repeated tags")
    fields: dict[str, Any] = {}
    for part in (p.strip() for p in re.split(r"[;\n]", body)):
        if not part:
            continue
        f = _FIELD.match(part)
        if f is None:
            raise MalformedCompletion(f"unreadable answer field {part!r}; expected 'Judge: ...', 'Choice: [X]' or 'Reason: [X]'")
        key, value = f.group(1).lower(), f.group(2).strip()
        if key in fields:
            raise MalformedCompletion(f"field {key!r} given twice")
        if key == "judge":
            if value.lower() not in JUDGEMENTS:
                raise MalformedCompletion(f"judge {value!r} is not one of {sorted(JUDGEMENTS)}")
            fields[key] = value.lower()
        else:
            letter = _LETTER.match(value)
            bound = n_options if key == "choice" else n_reasons
            if letter is None:
                raise MalformedCompletion(f"{key} {value!r} is not a bracketed capital letter like [B]")
            index = ord(letter.group(1)) - ord("A")
            if bound is not None and index >= bound:
                raise MalformedCompletion(f"{key} [{letter.group(1)}] is beyond the {bound} letters shown")
            fields[key] = index
    if not fields:
        raise MalformedCompletion("the answer holds no field")
    return Answer(think, **fields)


def _text(completion: Any) -> str:
    """TRL hands a completion as a string, or (conversational data) as a list of messages."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion and isinstance(completion[-1], dict):
        return str(completion[-1].get("content", ""))
    raise TypeError(f"A completion must be a string or a list of chat messages, got {type(completion).__name__}.")


def _column(kwargs: dict, name: str, n: int) -> list:
    values = kwargs.get(name)
    return [None] * n if values is None else list(values)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, (int, float)) and value < 0) or value == ""


def _parse_all(completions: Sequence[Any], kwargs: dict) -> list[Answer | None]:
    n = len(completions)
    n_options, n_reasons = _column(kwargs, "n_options", n), _column(kwargs, "n_reasons", n)
    out: list[Answer | None] = []
    for c, k, r in zip(completions, n_options, n_reasons):
        try:
            out.append(parse_completion(_text(c), None if _missing(k) else int(k), 3 if _missing(r) else int(r)))
        except MalformedCompletion:
            out.append(None)
    return out


# ------------------------------------------------------------------------------------------ ROUGE
def _tokens(text: str) -> list[str]:
    """rouge-score's default tokenisation (no stemming): lower case, runs of [a-z0-9]."""
    return re.findall(r"[a-z0-9]+", text.lower())


def _f1(overlap: int, n_pred: int, n_ref: int) -> float:
    if overlap == 0:
        return 0.0
    p, r = overlap / n_pred, overlap / n_ref
    return 2 * p * r / (p + r)


def _rouge_n(pred: list[str], ref: list[str], n: int) -> float:
    grams = lambda t: Counter(tuple(t[i : i + n]) for i in range(len(t) - n + 1))  # noqa: E731
    a, b = grams(pred), grams(ref)
    return _f1(sum((a & b).values()), sum(a.values()), sum(b.values()))


def _rouge_l(pred: list[str], ref: list[str]) -> float:
    prev = [0] * (len(ref) + 1)
    for x in pred:
        cur = [0]
        for j, y in enumerate(ref):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return _f1(prev[-1], len(pred), len(ref))


def rouge_mean(prediction: str, reference: str) -> float:
    """Mean of the ROUGE-1, ROUGE-2 and ROUGE-L F1 scores (S-GRPO's reason-text reward)."""
    pred, ref = _tokens(prediction), _tokens(reference)
    if not pred or not ref:
        return 0.0
    return (_rouge_n(pred, ref, 1) + _rouge_n(pred, ref, 2) + _rouge_l(pred, ref)) / 3.0


# ---------------------------------------------------------------------------------------- rewards
@dataclass(frozen=True)
class RewardConfig:
    """Values of every reward (the papers' defaults) and the weights of the summed designs."""

    format_value: float = 1.0
    judge_value: float = 1.0  # plain / GA-GRPO judge reward (G-UBS r_skip)
    judge_wrong: float = 0.0
    choice_value: float = 1.0
    reason_value: float = 1.0
    vragent_like: float = 1.0  # VRAgent-R1: +1 / -1 for the like/dislike judgement
    vragent_select: float = 2.0  # VRAgent-R1: +2 for the right next item
    step_judge: float = 0.5  # S-GRPO steps
    step_reason: float = 1.0
    step_text: float = 1.0
    format_weight: float = 1.0
    task_weight: float = 1.0

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if not isinstance(value, (int, float)) or value != value:
                raise ValueError(f"RewardConfig.{name} must be a number, got {value!r}.")


class _Reward:
    """A named TRL reward callable (TRL takes the name from ``__name__``)."""

    __name__ = "reward"

    def __call__(self, prompts: Sequence[Any] | None = None, completions: Sequence[Any] = (), **kwargs) -> list[float | None]:
        answers = _parse_all(completions, kwargs)
        return [self.score(a, i, kwargs) for i, a in enumerate(answers)]

    def score(self, answer: Answer | None, i: int, kwargs: dict) -> float | None:
        raise NotImplementedError


class FormatReward(_Reward):
    """``value`` for a completion that parses, 0 otherwise; counts the malformed ones."""

    __name__ = "format"

    def __init__(self, value: float = 1.0) -> None:
        self.value, self.malformed, self.seen = value, 0, 0

    def __call__(self, prompts=None, completions=(), **kwargs) -> list[float | None]:
        answers = _parse_all(completions, kwargs)
        bad = sum(a is None for a in answers)
        self.malformed += bad
        self.seen += len(answers)
        if "log_metric" in kwargs and answers:
            kwargs["log_metric"]("malformed", bad / len(answers))
        return [0.0 if a is None else self.value for a in answers]


class JudgeReward(_Reward):
    """``right`` when the judgement (skip/watch, like/dislike) matches ``judge``, else ``wrong``."""

    __name__ = "judge"

    def __init__(self, right: float = 1.0, wrong: float = 0.0) -> None:
        self.right, self.wrong = right, wrong

    def score(self, answer, i, kwargs):
        truth = _column(kwargs, "judge", i + 1)[i]
        if _missing(truth):
            return None
        ok = answer is not None and answer.positive is not None and answer.positive == JUDGEMENTS[str(truth).lower()]
        return self.right if ok else self.wrong


class _IndexReward(_Reward):
    field = ""

    def __init__(self, right: float = 1.0, wrong: float = 0.0) -> None:
        self.right, self.wrong = right, wrong

    def score(self, answer, i, kwargs):
        truth = _column(kwargs, self.field, i + 1)[i]
        if _missing(truth):
            return None
        return self.right if answer is not None and getattr(answer, self.field) == int(truth) else self.wrong


class ChoiceReward(_IndexReward):
    """``right`` when the chosen letter is the real option (VRAgent-R1 next-item selection: right=2)."""

    __name__ = "choice"
    field = "choice"


class ReasonReward(_IndexReward):
    """``right`` when the reason-class letter matches the label (rows without a label: None)."""

    __name__ = "reason"
    field = "reason"


class StepwiseReward(_Reward):
    """S-GRPO (ENF): judge -> reason class -> reason text, stopping at the first wrong step.

    judge right: +``judge``; stop there when the real feedback is positive. Reason class right (a label
    exists): +``reason``; else stop. Reason text (a real reason exists): +``text`` x mean ROUGE-1/2/L of
    the thinking text against it. A malformed completion gets 0.
    """

    __name__ = "stepwise"

    def __init__(self, judge: float = 0.5, reason: float = 1.0, text: float = 1.0) -> None:
        self.judge, self.reason, self.text = judge, reason, text

    def score(self, answer, i, kwargs):
        truth = _column(kwargs, "judge", i + 1)[i]
        if _missing(truth):
            return None
        positive = JUDGEMENTS[str(truth).lower()]
        if answer is None or answer.positive is None or answer.positive != positive:
            return 0.0
        total = self.judge
        if positive:
            return total
        label = _column(kwargs, "reason", i + 1)[i]
        if _missing(label) or answer.reason != int(label):
            return total
        total += self.reason
        real = _column(kwargs, "reason_text", i + 1)[i]
        if not _missing(real):
            total += self.text * rouge_mean(answer.think, str(real))
        return total


DESIGNS = ("plain", "sgrpo", "gagrpo", "vragent")


def reward_functions(design: str, config: RewardConfig | None = None) -> tuple[list[Callable], list[float]]:
    """The reward callables and their weights for a GRPO design (pass both to ``GRPOTrainer``/``GRPOConfig``).

    * ``plain``: format + judge + choice + reason class, each 0/1;
    * ``sgrpo``: format + the S-GRPO step reward;
    * ``gagrpo``: G-UBS's R = r_format + r_skip + r_choice (the group weighting lives in the trainer);
    * ``vragent``: format + like/dislike (+1 / -1) + next-item selection (+2).
    """
    c = config or RewardConfig()
    fmt = FormatReward(c.format_value)
    if design == "plain":
        tasks = [JudgeReward(c.judge_value, c.judge_wrong), ChoiceReward(c.choice_value), ReasonReward(c.reason_value)]
    elif design == "sgrpo":
        tasks = [StepwiseReward(c.step_judge, c.step_reason, c.step_text)]
    elif design == "gagrpo":
        tasks = [JudgeReward(c.judge_value, c.judge_wrong), ChoiceReward(c.choice_value)]
    elif design == "vragent":
        tasks = [JudgeReward(c.vragent_like, -c.vragent_like), ChoiceReward(c.vragent_select)]
    else:
        raise ValueError(f"Unknown reward design {design!r}; expected one of {', '.join(DESIGNS)}.")
    return [fmt, *tasks], [c.format_weight] + [c.task_weight] * len(tasks)
