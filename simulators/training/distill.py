"""UserMirrorer-style distillation of decision processes into SFT rows and DPO preference pairs.

Exactly what is computed, per choice scene (memory + exposure list, the real choice known):

1. the **teacher** writes ``n_rationales`` decision processes (sampled, ``temperature``): the page
   question asked to think first, answered as ``Stimulus: ... Knowledge: ... Evaluation: ...``
   (:func:`simulators.training.examples.decision_prompt`); the **student** writes as many;
2. one shared **predictor** reads each rationale and gives the distribution over the options (the
   slate letters and "None of these") after ``Behavior: [`` -- scored in one tree pass per scene;
3. entropy ``H`` of each distribution; the scene's *difficulty for the student* is
   ``mean H(student rationales) - mean H(teacher rationales)``;
4. scenes where no teacher rationale *reaches* the real choice (predictor argmax == real option)
   are dropped; the rest are ranked by the difficulty, highest first, and the top ``keep_fraction``
   kept;
5. **chosen** = the teacher rationale that reaches the real choice with the lowest entropy;
   **rejected** = the rationale (teacher or student) that reaches a *wrong* option with the lowest
   entropy (the most confidently wrong one); a kept scene without any wrong rationale gives an SFT
   row but no pair.

The counts also say how many teacher rationales are *not* decision processes (fewer than
``MIN_PROCESS_WORDS`` words outside the bracketed letters): a model fine-tuned on direct answers (the
SFT simulator) tends to answer ``[A] Rating: [B]`` instead of thinking first, and such a teacher
distils nothing (measured on ml-100k: `recsim distill` with the SFT adapter as teacher, 40 scenes ->
4 reachable, 2 kept, 0 pairs, every kept rationale a bare answer).

The predictor must *read* the rationale. SmolLM2-135M does not (measured on 4 train scenes, 35
hand-written rationales ending "Evaluation: I pick [X]." or naming X's title: the predictor's argmax
was X for 4-8 of 35, chance level; its distribution mostly follows the options' positions). With it as
predictor, teacher and student, 40 scenes gave 0 pairs; a larger instruct model is needed for this
stage. :mod:`simulators.training.preferences` builds DPO pairs from the logs instead.

Outputs: SFT rows (prompt, chosen completion) and DPO rows (prompt, chosen, rejected), each
completion ending with ``Behavior: [X]`` as the simulator's answer format. The teacher is any model
(on these machines: the largest available, or the SFT-trained simulator itself); the student is
usually the model being trained, and the predictor the base model.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from simulators.llm.prompts import LETTERS, PAGE_PREFIX
from simulators.training.scenes import ChoiceScene

__all__ = ["DistillConfig", "Rationale", "SceneRationales", "distill", "entropy", "is_decision_process", "select", "write_rows"]

MIN_PROCESS_WORDS = 5


@dataclass(frozen=True)
class DistillConfig:
    """n_rationales: decision processes per scene from the teacher and from the student (each).
    keep_fraction: share of the ranked scenes kept (after dropping unreachable ones).
    max_new_tokens / temperature: sampling of the rationales."""

    n_rationales: int = 4
    keep_fraction: float = 0.5
    max_new_tokens: int = 96
    temperature: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n_rationales < 1 or self.max_new_tokens < 1:
            raise ValueError("n_rationales and max_new_tokens must be >= 1.")
        if not 0.0 < self.keep_fraction <= 1.0:
            raise ValueError(f"keep_fraction must be in (0, 1], got {self.keep_fraction}.")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}.")


@dataclass
class Rationale:
    text: str
    probs: np.ndarray  # predictor's distribution over the options after this rationale

    @property
    def choice(self) -> int:
        return int(np.argmax(self.probs))

    @property
    def entropy(self) -> float:
        return entropy(self.probs)


@dataclass
class SceneRationales:
    """One scene's rationales and what is selected from them."""

    prompt: str
    target: int
    teacher: list[Rationale]
    student: list[Rationale]
    difficulty: float = field(init=False)

    def __post_init__(self) -> None:
        self.difficulty = float(np.mean([r.entropy for r in self.student]) - np.mean([r.entropy for r in self.teacher]))

    @property
    def reachable(self) -> bool:
        return any(r.choice == self.target for r in self.teacher)

    def chosen(self) -> Rationale | None:
        right = [r for r in self.teacher if r.choice == self.target]
        return min(right, key=lambda r: r.entropy) if right else None

    def rejected(self) -> Rationale | None:
        wrong = [r for r in self.teacher + self.student if r.choice != self.target]
        return min(wrong, key=lambda r: r.entropy) if wrong else None


def is_decision_process(text: str) -> bool:
    """True when ``text`` has at least ``MIN_PROCESS_WORDS`` words besides bracketed option letters."""
    return len(re.findall(r"[A-Za-z]{2,}", re.sub(r"\[[A-Z]\]", " ", text))) >= MIN_PROCESS_WORDS


def entropy(p: np.ndarray) -> float:
    """Shannon entropy in nats (0 log 0 = 0)."""
    p = np.asarray(p, dtype=np.float64)
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def completion(rationale: Rationale) -> str:
    """The rationale as an answer in the simulator's format, ending with the option it reaches."""
    return " " + rationale.text.strip() + f"\n{PAGE_PREFIX}{LETTERS[rationale.choice]}]"


def select(scenes: Sequence[SceneRationales], keep_fraction: float) -> tuple[list[dict], list[dict], dict[str, int]]:
    """Steps 4-5 of the module docstring: (SFT rows, DPO rows, counts)."""
    reachable = [s for s in scenes if s.reachable]
    ranked = sorted(reachable, key=lambda s: -s.difficulty)
    kept = ranked[: int(np.ceil(keep_fraction * len(ranked)))]
    sft, dpo = [], []
    for s in kept:
        chosen = s.chosen()
        sft.append({"prompt": s.prompt, "completion": completion(chosen), "difficulty": s.difficulty})
        rejected = s.rejected()
        if rejected is not None:
            dpo.append({"prompt": s.prompt, "chosen": completion(chosen), "rejected": completion(rejected), "difficulty": s.difficulty})
    bare = sum(not is_decision_process(r.text) for s in scenes for r in s.teacher)
    counts = {"scenes": len(scenes), "reachable": len(reachable), "kept": len(kept), "pairs": len(dpo), "teacher_not_a_process": bare}
    return sft, dpo, counts


# ------------------------------------------------------------------------------------ with models
def _sample(simulator, prompt: str, config: DistillConfig) -> list[str]:
    """``n_rationales`` sampled decision processes, each cut before any behaviour it wrote itself."""
    import torch

    torch.manual_seed(config.seed)
    texts = simulator.generate([prompt], config.max_new_tokens, samples=config.n_rationales, temperature=config.temperature)
    return [t.split(PAGE_PREFIX)[0].strip() for t in texts]


def _predict(predictor, scene: ChoiceScene, question: str, rationales: Sequence[str]) -> list[np.ndarray]:
    """The predictor's option distribution after each rationale (one tree pass: shared memory, one branch each)."""
    sc = predictor.scorer
    n = len(scene.request.slate) + 1
    branches = [question + " " + r + "\n" + PAGE_PREFIX for r in rationales]
    dists, _, _ = sc.score(sc.encode([predictor.scenes.context(scene.request)]), [sc.encode(branches)],
                           [[predictor.letters["page"][:n]] * len(branches)])
    return dists[0]


def distill(scenes: Sequence[ChoiceScene], teacher, student, predictor, config: DistillConfig | None = None,
            progress: bool = True) -> tuple[list[dict], list[dict], dict[str, int]]:
    """Steps 1-5 for ``scenes`` with three bound :class:`~simulators.llm.LLMUserSimulator` s (any may be the same)."""
    from tqdm.auto import tqdm

    from simulators.training.examples import decision_prompt

    config = config or DistillConfig()
    results = []
    for scene in tqdm(scenes, desc="distill", disable=not progress):
        prompt, _ = decision_prompt(predictor.scenes, scene)
        head = predictor.scenes.system() + predictor.scenes.context(scene.request)
        question = prompt[len(head):]
        t_texts = _sample(teacher, decision_prompt(teacher.scenes, scene)[0], config)
        s_texts = _sample(student, decision_prompt(student.scenes, scene)[0], config)
        dists = _predict(predictor, scene, question, t_texts + s_texts)
        k = config.n_rationales
        results.append(SceneRationales(
            prompt, scene.target, [Rationale(t, d) for t, d in zip(t_texts, dists[:k])],
            [Rationale(t, d) for t, d in zip(s_texts, dists[k:])],
        ))
    return select(results, config.keep_fraction)


def write_rows(rows: Sequence[dict], path: str | Path) -> None:
    with open(path, "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
