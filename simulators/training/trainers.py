"""Fine-tuning the LLM user simulator with TRL: SFT on real behaviour, DPO on distilled preferences, GRPO on rewards.

One config dataclass per trainer (as TRL does): :class:`SimulatorSFTConfig` -> :func:`train_sft`,
:class:`SimulatorDPOConfig` -> :func:`train_dpo`, :class:`SimulatorGRPOConfig` -> :func:`train_grpo`. All

* load the base model in fp32 (a CPU trains fp32; ``bf16=True`` turns on autocast, ~1.5x faster here)
  and train a LoRA adapter (peft) on all linear layers, or all weights with ``full=True``;
* checkpoint every ``save_steps`` under ``<output_dir>/checkpoints`` and resume from the newest
  checkpoint when run again with the same output directory (same seeded data, so the same run);
* write the result to ``output_dir`` (adapter or full weights, tokenizer) with a training card
  (``TRAINING_CARD.md`` + ``training_card.json``: data, steps, time, loss curve, config).

``LLMUserSimulator(adapter=output_dir)`` then uses the adapter (``model=output_dir`` for full weights).

SFT data (see :mod:`simulators.training.examples`): train users' choice scenes (the real item's letter
and its real rating) and feed scenes (watch/skip, then the rating or the labelled reason), in the
simulator's own prompt format; optionally decision-process rationales from distillation. The
completion-only loss (TRL's default for prompt/completion data) trains the answers, not the prompts.
GRPO data (:mod:`simulators.training.grpo_data`): prompts that ask for ``<think>...</think><answer>...</answer>``
with the truth columns the rewards read (:mod:`simulators.training.rewards`; GA-GRPO: :mod:`simulators.training.group_grpo`).
DPO data: ``{"prompt", "chosen", "rejected"}`` rows, from `recsim distill` (decision processes) or `recsim pairs` (:func:`simulators.training.preferences.behaviour_pairs`);
the reference model is the starting adapter (TRL keeps a frozen copy) or the base model.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Sequence

import numpy as np

from simulators.llm.models import DEFAULT_MODEL, resolve_model_dir
from simulators.llm.prompts import ANSWER_FORMATS
from simulators.training.rewards import RewardConfig
from simulators.training.scenes import SceneConfig

__all__ = [
    "SimulatorDPOConfig", "SimulatorGRPOConfig", "SimulatorSFTConfig", "export_adapter", "grpo_rows", "sft_examples", "train_dpo",
    "train_grpo", "train_sft", "write_card",
]

LINEAR_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass
class _RunConfig:
    """Fields shared by both trainers.

    model: base model (``"smollm2-135m"``, a checkpoint directory or a hub id).
    init_adapter: an adapter directory to start from (DPO usually starts from the SFT adapter).
    full: train all weights instead of a LoRA adapter.
    max_steps: optimiser steps; ``batch_size * grad_accum`` examples each.
    save_steps: checkpoint interval (a rerun resumes from the newest checkpoint).
    max_length: longest tokenised example (prompt + completion); a longer one is an error, never cut silently.
    bf16: bf16 autocast (on a CPU: measured ~1.5x faster than fp32 for this model, slightly noisier).
    """

    output_dir: str = "runs/simulator"
    model: str = DEFAULT_MODEL
    dataset: str = "ml-100k"
    init_adapter: str | None = None
    full: bool = False
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    target_modules: tuple[str, ...] = LINEAR_MODULES
    max_steps: int = 100
    batch_size: int = 8
    grad_accum: int = 1
    learning_rate: float = 2e-4
    warmup_steps: int = 5
    max_length: int = 2048
    save_steps: int = 10
    logging_steps: int = 1
    seed: int = 0
    bf16: bool = False
    history_in_prompt: int = 10

    def __post_init__(self) -> None:
        for name in ("max_steps", "batch_size", "grad_accum", "save_steps", "lora_r", "max_length", "logging_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}.")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}.")
        if self.init_adapter is not None and self.full:
            raise ValueError("init_adapter starts from a LoRA adapter; it cannot be combined with full=True.")
        if self.init_adapter is not None and not (Path(self.init_adapter) / "adapter_config.json").is_file():
            raise FileNotFoundError(f"init_adapter={self.init_adapter!r} holds no adapter_config.json: not a PEFT adapter directory.")

    @property
    def n_examples(self) -> int:
        return self.max_steps * self.batch_size * self.grad_accum


@dataclass
class SimulatorSFTConfig(_RunConfig):
    """SFT on real behaviour (see the module docstring).

    scenes: how train scenes are built (:class:`~simulators.training.scenes.SceneConfig`).
    feed_fraction: share of feed-item examples among the examples (the rest are choice scenes).
    rationales: a JSONL of distilled decision processes (``prompt``/``completion`` rows) mixed in, or None.
    label_teacher: a teacher LLM for the skip reasons, as ``"<model>"`` or ``"<model>+<adapter dir>"``
        (:class:`~simulators.training.labels.TeacherLabeller`); None: the data-derived labeller.
    unchosen_fraction: share of the feed examples that are exposure options the user passed over, shown as
        skipped feed items (an assumption: MovieLens logs no impressions; see ``examples.unchosen_example``).
    unchosen_sources: the option sources those come from (:data:`~simulators.training.scenes.SOURCES`);
        None: any; ``("random",)``: never-interacted items only (Agent4Rec's negatives).
    answer_format: ``"letters"`` (the simulator's scored format) or ``"think"`` (GRPO's ``<think>/<answer>``
        format with empty thinking: the warm-up GRPO needs, since a model that never writes the format gets
        no reward signal).
    """

    output_dir: str = "runs/sft"
    scenes: SceneConfig = field(default_factory=SceneConfig)
    feed_fraction: float = 0.5
    rationales: str | None = None
    unchosen_fraction: float = 0.0
    unchosen_sources: tuple[str, ...] | None = None
    label_teacher: str | None = None
    answer_format: str = "letters"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.answer_format not in ANSWER_FORMATS:
            raise ValueError(f"answer_format must be 'letters' (the simulator's scored format) or 'think' (GRPO's "
                             f"<think>/<answer> format, a warm-up before GRPO), got {self.answer_format!r}.")
        if self.answer_format == "think" and (self.rationales or self.unchosen_fraction or self.label_teacher):
            raise ValueError("answer_format='think' builds feed and choice examples only; drop rationales, "
                             "unchosen_fraction and label_teacher.")
        for name in ("feed_fraction", "unchosen_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}.")
        if self.unchosen_sources is not None:
            from simulators.training.scenes import SOURCES

            unknown = set(self.unchosen_sources) - set(SOURCES)
            if not self.unchosen_sources or unknown:
                raise ValueError(f"unchosen_sources must be None or a non-empty subset of {SOURCES}, got {self.unchosen_sources}.")
        if self.rationales is not None and not Path(self.rationales).is_file():
            raise FileNotFoundError(f"rationales={self.rationales!r} is not a file (expected a JSONL from distillation).")


@dataclass
class SimulatorDPOConfig(_RunConfig):
    """DPO on ``{"prompt", "chosen", "rejected"}`` rows read from ``pairs`` (JSONL).

    beta: DPO temperature (TRL's default 0.1).
    """

    output_dir: str = "runs/dpo"
    pairs: str = ""
    beta: float = 0.1
    learning_rate: float = 5e-5

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.pairs or not Path(self.pairs).is_file():
            raise FileNotFoundError(
                f"pairs={self.pairs!r} is not a file: DPO needs a JSONL of prompt/chosen/rejected rows "
                "(`recsim pairs --out DIR` writes DIR/pairs.jsonl from the logs; `recsim distill` from decision processes)."
            )
        if self.beta <= 0:
            raise ValueError(f"beta must be > 0, got {self.beta}.")


@dataclass
class SimulatorGRPOConfig(_RunConfig):
    """GRPO (TRL ``GRPOTrainer``) with a reward design of :func:`simulators.training.rewards.reward_functions`.

    rewards: ``plain`` (format + judge + choice + reason), ``sgrpo`` (format + S-GRPO steps), ``gagrpo``
        (format + judge + choice, group-aware advantages over user / similar user / group profile), ``vragent``
        (format + like/dislike +1/-1 + next-item selection +2).
    reward_config: the values and weights of the rewards.
    groups: the user-groups JSON of ``recsim build-groups`` (``gagrpo`` needs it).
    role_weights: (W_T, W_S, W_G) of ``gagrpo``.
    no_group_profiles: ``gagrpo`` ablation: the group-profile prompt is replaced by the training user's.
    feed_fraction: share of feed-item prompts (the rest are choice scenes); ``sgrpo`` uses feed items only.
    batch_size: completions per optimiser micro-step; a multiple of ``num_generations`` (x3 for ``gagrpo``).
    beta: KL weight to the reference model (the base model; 0 = no reference, TRL's default).
    use_vllm: generate the completions with vLLM in the training process (TRL's ``vllm_mode="colocate"``);
        needs a GPU and the ``vllm`` package. Everything else stays as on CPU.
    """

    output_dir: str = "runs/grpo"
    rewards: str = "sgrpo"
    reward_config: RewardConfig = field(default_factory=RewardConfig)
    groups: str | None = None
    role_weights: tuple[float, float, float] = (1.0, 0.5, 0.5)
    no_group_profiles: bool = False
    feed_fraction: float = 0.5
    scenes: SceneConfig = field(default_factory=SceneConfig)
    num_generations: int = 4
    max_completion_length: int = 64
    temperature: float = 1.0
    beta: float = 0.0
    use_vllm: bool = False
    learning_rate: float = 1e-5
    batch_size: int = 8
    history_in_prompt: int = 3

    def __post_init__(self) -> None:
        super().__post_init__()
        from simulators.training.rewards import DESIGNS

        if self.rewards not in DESIGNS:
            raise ValueError(f"rewards must be one of {', '.join(DESIGNS)}, got {self.rewards!r}.")
        if self.num_generations < 2:
            raise ValueError(f"num_generations must be >= 2 (GRPO compares a prompt's completions), got {self.num_generations}.")
        group = self.num_generations * (3 if self.rewards == "gagrpo" else 1)
        if self.batch_size % group:
            raise ValueError(f"batch_size ({self.batch_size}) must be a multiple of {group} "
                             f"(num_generations{' x 3 prompts per GA-GRPO example' if group != self.num_generations else ''}).")
        if self.rewards == "gagrpo" and (self.groups is None or not Path(self.groups).is_file()):
            raise FileNotFoundError(
                f"groups={self.groups!r}: GA-GRPO needs a user-groups JSON (`recsim build-groups --out FILE`; for ml-100k "
                "one is committed at benchmarks/results/groups_ml100k_interest.json)."
            )
        if not 0.0 <= self.feed_fraction <= 1.0:
            raise ValueError(f"feed_fraction must be in [0, 1], got {self.feed_fraction}.")
        if self.use_vllm:
            from trl.import_utils import is_vllm_available

            if not is_vllm_available():
                raise ValueError("use_vllm=True needs the vllm package (pip install vllm) and a GPU; "
                                 "leave it off to generate with transformers.")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0 (GRPO samples its completions), got {self.temperature}.")
        if len(self.role_weights) != 3 or min(self.role_weights) < 0:
            raise ValueError(f"role_weights must be three non-negative numbers (W_T, W_S, W_G), got {self.role_weights}.")

    @property
    def n_prompts(self) -> int:
        return self.max_steps * self.batch_size * self.grad_accum // self.num_generations


# ----------------------------------------------------------------------------------------------- data
def sft_examples(dataset, tokenizer, config: SimulatorSFTConfig) -> tuple[list[dict[str, str]], dict[str, int]]:
    """The seeded SFT examples of a run (exactly ``config.n_examples``, fewer if the data runs out) and their counts by kind."""
    from simulators.llm.prompts import ChatFormat, SceneBuilder
    from simulators.training.examples import choice_example, feed_examples, passed_over_option, unchosen_example
    from simulators.training.labels import labeller
    from simulators.training.scenes import choice_scenes, feed_scenes

    if config.answer_format == "think":
        return _think_examples(dataset, tokenizer, config)
    rng = np.random.default_rng(config.seed)
    builder = SceneBuilder(dataset, ChatFormat(tokenizer), history_in_prompt=config.history_in_prompt)
    rationale_rows = _read_jsonl(config.rationales) if config.rationales else []
    need = config.n_examples - min(len(rationale_rows), config.n_examples // 2)
    n_feed = int(round(need * config.feed_fraction))
    n_unchosen = int(round(n_feed * config.unchosen_fraction))
    n_feed -= n_unchosen
    choice = choice_scenes(dataset, "train", config.scenes)
    order = rng.permutation(len(choice))
    picked = [choice[i] for i in order[: need - n_feed - n_unchosen]]
    examples = [choice_example(builder, s) for s in picked]
    counts = {"choice": len(examples)}
    if n_unchosen:  # other scenes than the choice examples', one passed-over option each
        rows = []
        for i in order[len(picked) :]:
            if len(rows) == n_unchosen:
                break
            j = passed_over_option(choice[i], rng, config.unchosen_sources)
            if j is not None:
                rows.append(unchosen_example(builder, choice[i], j))
        examples += rows
        counts["unchosen"] = len(rows)
    if n_feed:
        feed = feed_scenes(dataset, "train", config.scenes)
        order = rng.permutation(len(feed))[: -(-n_feed // config.scenes.feed_items)]
        chosen = [feed[i] for i in order]
        teacher = None
        if config.label_teacher:
            from simulators.llm import LLMUserSimulator

            model, _, adapter = config.label_teacher.partition("+")
            teacher = LLMUserSimulator(model=model, adapter=adapter or None)
        labels = labeller(dataset, teacher).label(chosen)
        rows = [ex for s, lab in zip(chosen, labels) for ex in feed_examples(builder, s, lab)][:n_feed]
        examples += rows
        counts["feed"] = len(rows)
    if rationale_rows:
        keep = rationale_rows[: config.n_examples - len(examples)]
        examples += [{"prompt": r["prompt"], "completion": r["completion"]} for r in keep]
        counts["rationale"] = len(keep)
    order = rng.permutation(len(examples))
    return [examples[i] for i in order], counts


def _sample_scenes(dataset, rng: np.random.Generator, n_feed: int, n_choice: int, scenes: SceneConfig):
    """Seeded train feed scenes enough for ``n_feed`` items (with their reason labels) and ``n_choice`` choice scenes."""
    from simulators.training.labels import DataLabeller
    from simulators.training.scenes import choice_scenes, feed_scenes

    feed = feed_scenes(dataset, "train", scenes) if n_feed else []
    feed = [feed[i] for i in rng.permutation(len(feed))[: -(-n_feed // scenes.feed_items)]] if n_feed else []
    labels = DataLabeller(dataset).label(feed) if feed else []
    choice = choice_scenes(dataset, "train", scenes) if n_choice > 0 else []
    choice = [choice[i] for i in rng.permutation(len(choice))[:n_choice]] if choice else []
    return feed, labels, choice


def grpo_rows(dataset, tokenizer, config: SimulatorGRPOConfig) -> tuple[list[dict], dict[str, int]]:
    """The seeded GRPO prompts of a run (``config.n_prompts``, fewer if the data runs out) and their counts by kind.

    Rows are in (user, similar, group) triples for ``gagrpo`` (see :mod:`simulators.training.grpo_data`).
    """
    from simulators.groups import load_groups
    from simulators.llm.prompts import ChatFormat, SceneBuilder
    from simulators.training.grpo_data import choice_rows, group_triples

    rng = np.random.default_rng(config.seed)
    builder = SceneBuilder(dataset, ChatFormat(tokenizer), history_in_prompt=config.history_in_prompt, answer_format="think")
    triple = config.rewards == "gagrpo"
    n = config.n_prompts // 3 if triple else config.n_prompts  # examples (a GA-GRPO example is 3 prompts)
    n_feed = n if config.rewards == "sgrpo" else int(round(n * config.feed_fraction))
    feed, labels, choice = _sample_scenes(dataset, rng, n_feed, n - n_feed, config.scenes)
    rows: list[dict] = []
    if triple:
        groups = load_groups(config.groups)
        for scene, lab in zip(feed, labels):
            rows += group_triples(builder, scene, groups, rng, lab, config.scenes.memory)
        rows = rows[: 3 * n_feed]
        if config.no_group_profiles:  # ablation: the group prompt becomes the training user's
            for i in range(2, len(rows), 3):
                rows[i] = dict(rows[i - 2], role="group")
    else:
        return _feed_then_choice(builder, feed, labels, choice, n_feed)
    counts = {"feed": len(rows) // 3}
    if choice:  # a choice scene has no group variant here: the user stands in for all three roles
        rows += [dict(r, role=role) for s in choice for r in choice_rows(builder, s) for role in ("user", "similar", "group")]
        counts["choice"] = len(choice)
    counts["similar_users"] = sum(r["role"] == "similar" and r["user"] != rows[i - 1]["user"] for i, r in enumerate(rows))
    return rows, counts


def _feed_then_choice(builder, feed, labels, choice, n_feed: int) -> tuple[list[dict], dict[str, int]]:
    """GRPO-format rows: the first ``n_feed`` feed items of the scenes, then one row per choice scene."""
    from simulators.training.grpo_data import choice_rows, feed_rows

    rows = [r for scene, lab in zip(feed, labels) for r in feed_rows(builder, scene, lab)][:n_feed]
    counts = {"feed": len(rows)}
    if choice:
        rows += [r for s in choice for r in choice_rows(builder, s)]
        counts["choice"] = len(choice)
    return rows, counts


def _think_examples(dataset, tokenizer, config: SimulatorSFTConfig) -> tuple[list[dict[str, str]], dict[str, int]]:
    """SFT in GRPO's answer format (a format warm-up): GRPO's prompts, the real answer as
    ``<think></think><answer>...</answer>`` (empty thinking: no real reasoning text exists to imitate)."""
    from simulators.llm.prompts import ChatFormat, SceneBuilder
    from simulators.training.grpo_data import format_completion

    rng = np.random.default_rng(config.seed)
    builder = SceneBuilder(dataset, ChatFormat(tokenizer), history_in_prompt=config.history_in_prompt, answer_format="think")
    n_feed = int(round(config.n_examples * config.feed_fraction))
    feed, labels, choice = _sample_scenes(dataset, rng, n_feed, config.n_examples - n_feed, config.scenes)
    rows, counts = _feed_then_choice(builder, feed, labels, choice, n_feed)
    counts.setdefault("choice", 0)
    examples = [{"prompt": r["prompt"], "completion": format_completion(r)} for r in rows]
    return [examples[i] for i in rng.permutation(len(examples))], counts


def _check_lengths(tokenizer, texts: Sequence[str], max_length: int) -> None:
    lengths = np.array([len(ids) for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"]])
    long = int((lengths > max_length).sum())
    if long:
        raise ValueError(
            f"{long} of {len(texts)} examples are longer than max_length={max_length} tokens (longest {lengths.max()}); "
            "raise max_length or show less history (history_in_prompt) rather than cutting answers off."
        )


def _read_jsonl(path: str) -> list[dict]:
    with open(path) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return rows


# ------------------------------------------------------------------------------------------ training
def _bound_cpu_heap() -> bool:
    """glibc only: serve allocations >= 8 MB by mmap so freed activations go back to the OS.

    With the default dynamic threshold, CPU training on batches of varying length grew to 22 GB in
    9 steps here (killed by the OOM killer); with this setting it stays near 9 GB at the same speed
    (a 64 KB threshold also bounds it but made steps ~40% slower). Same as ``MALLOC_MMAP_THRESHOLD_=8388608``.
    """
    import ctypes
    import ctypes.util
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        return bool(libc.mallopt(m_mmap_threshold, 8 << 20)) and bool(libc.mallopt(m_trim_threshold, 128 << 20))
    except (OSError, AttributeError):  # not glibc (musl, ...): nothing to tune
        return False


def _model_and_peft(config: _RunConfig):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not torch.cuda.is_available():
        _bound_cpu_heap()
    path = resolve_model_dir(config.model)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    if config.full:
        return model, tokenizer, None
    from peft import LoraConfig, PeftModel

    if config.init_adapter:
        return PeftModel.from_pretrained(model, config.init_adapter, is_trainable=True), tokenizer, None
    peft_config = LoraConfig(
        r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
        target_modules=list(config.target_modules), task_type="CAUSAL_LM",
    )
    return model, tokenizer, peft_config


def _common_args(config: _RunConfig) -> dict:
    import torch

    return dict(
        output_dir=str(Path(config.output_dir) / "checkpoints"), max_steps=config.max_steps,
        per_device_train_batch_size=config.batch_size, gradient_accumulation_steps=config.grad_accum,
        learning_rate=config.learning_rate, warmup_steps=config.warmup_steps, lr_scheduler_type="linear",
        logging_steps=config.logging_steps, save_steps=config.save_steps, save_total_limit=2, seed=config.seed,
        data_seed=config.seed, max_length=config.max_length, use_cpu=not torch.cuda.is_available(), bf16=config.bf16,
        gradient_checkpointing=False, report_to=[], dataloader_num_workers=0,
    )


def _run(trainer, config: _RunConfig, kind: str, data_counts: dict[str, int], started: float) -> Path:
    """Train (resuming from the newest checkpoint if any), save weights and the training card."""
    ckpts = sorted(Path(trainer.args.output_dir).glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]))
    resumed = ckpts[-1].name if ckpts else None
    result = trainer.train(resume_from_checkpoint=str(ckpts[-1]) if ckpts else None)
    out = Path(config.output_dir)
    trainer.save_model(str(out))
    trainer.processing_class.save_pretrained(str(out))
    losses = [(h["step"], h["loss"]) for h in trainer.state.log_history if "loss" in h]
    card = {
        "kind": kind, "base_model": config.model, "dataset": config.dataset, "data": data_counts,
        "steps": int(trainer.state.global_step), "resumed_from": resumed, "seconds_this_run": round(time.time() - started, 1),
        "train_runtime_s": round(float(result.metrics.get("train_runtime", float("nan"))), 1),
        "final_loss": losses[-1][1] if losses else None,
        "first_loss": losses[0][1] if losses else None, "loss_curve": losses,
        **_reward_curves(trainer.state.log_history),
        "config": asdict(config),  # json writes its tuples as lists
    }
    write_card(out, with_init_card(card))
    return out


def _reward_curves(history: list[dict]) -> dict:
    """GRPO only: the logged mean reward per step and per reward component, and the malformed-completion share."""
    keys = sorted({k for h in history for k in h if k == "reward" or k == "malformed" or k.startswith("rewards/") and k.endswith("/mean")})
    if not keys:
        return {}
    # a component that had no truth in a batch (e.g. no choice prompt) is logged as None there
    return {"reward_curves": {k: [(h["step"], h[k]) for h in history if h.get(k) is not None] for k in keys}}


def with_init_card(card: dict) -> dict:
    """``card`` plus ``init_card``: the facts of the adapter it started from (its own chain included, loss
    curve and fidelity table left out), so a card tells the whole recipe of a multi-stage adapter."""
    init = card.get("config", {}).get("init_adapter")
    if init and "init_card" not in card and (Path(init) / "training_card.json").is_file():
        parent = json.loads((Path(init) / "training_card.json").read_text())
        card = {**card, "init_card": {k: v for k, v in parent.items() if k not in ("loss_curve", "fidelity")}}
    return card


def write_card(out: Path, card: dict) -> None:
    """``training_card.json`` (all facts) and ``TRAINING_CARD.md`` (the readable summary) in ``out``."""
    out = Path(out)
    (out / "training_card.json").write_text(json.dumps(card, indent=2) + "\n")
    cfg = card.get("config", {})
    lines = [
        f"# {card['kind'].upper()} adapter for the LLM user simulator", "",
        f"- base model: `{card['base_model']}`; dataset: `{card['dataset']}` (train users only)",
        f"- data: {', '.join(f'{v} {k} examples' for k, v in card['data'].items())}",
        f"- steps: {card['steps']} x batch {cfg.get('batch_size')} x accumulation {cfg.get('grad_accum')}; "
        f"learning rate {cfg.get('learning_rate')}; LoRA r={cfg.get('lora_r')} (full={cfg.get('full')}); bf16={cfg.get('bf16')}",
        f"- time: {card['train_runtime_s']} s of training in the last run (resumed from {card['resumed_from']})",
        f"- loss: first logged {card['first_loss']}, last logged {card['final_loss']}",
    ]
    if card.get("reward_curves"):
        lines.append(f"- reward design `{cfg.get('rewards')}`; first -> last logged: " + ", ".join(
            f"{k} {v[0][1]:.3g} -> {v[-1][1]:.3g}" for k, v in card["reward_curves"].items() if v))
    parent = card.get("init_card")
    while parent:  # the stages this adapter started from, newest first
        pcfg = parent.get("config", {})
        lines.append(f"- started from `{cfg.get('init_adapter')}`: {parent['kind'].upper()} of {parent['steps']} steps x batch "
                     f"{pcfg.get('batch_size')} x accumulation {pcfg.get('grad_accum')} on "
                     f"{', '.join(f'{v} {k}' for k, v in parent['data'].items())} examples; loss {parent['first_loss']} -> {parent['final_loss']}")
        cfg, parent = pcfg, parent.get("init_card")
    if card.get("notes"):
        lines += ["", "## Notes", "", *[f"- {n}" for n in card["notes"]]]
    if "fidelity" in card:
        lines += ["", "## Fidelity (held-out test users; `recsim eval-simulator`)", "", card["fidelity"]]
    (out / "TRAINING_CARD.md").write_text("\n".join(lines) + "\n")


def export_adapter(src: str | Path, dst: str | Path, dtype: str = "bfloat16") -> Path:
    """Copy what a user of a trained adapter needs (weights cast to ``dtype``, adapter config, training card)
    to ``dst``: small enough to commit (LoRA r=16 on SmolLM2-135M: ~10 MB in bf16), no checkpoints/tokenizer."""
    import shutil

    import torch
    from safetensors.torch import load_file, save_file

    src, dst = Path(src), Path(dst)
    if not (src / "adapter_config.json").is_file() or not (src / "training_card.json").is_file():
        raise FileNotFoundError(f"{src} holds no adapter_config.json or training_card.json: not an adapter trained here.")
    dst.mkdir(parents=True, exist_ok=True)
    weights = load_file(str(src / "adapter_model.safetensors"))
    save_file({k: v.to(getattr(torch, dtype)).contiguous() for k, v in weights.items()}, str(dst / "adapter_model.safetensors"))
    shutil.copy(src / "adapter_config.json", dst / "adapter_config.json")
    card = json.loads((src / "training_card.json").read_text())
    card["exported"] = {"from": str(src), "dtype": dtype}
    write_card(dst, with_init_card(card))
    return dst


def _data(given: Sequence[dict] | None, build, what: str) -> tuple[Sequence[dict], dict[str, int]]:
    """The run's rows: ``given`` ones, else ``build()`` from the dataset's scenes; none is an error."""
    rows, counts = (given, {"given": len(given)}) if given is not None else build()
    if not rows:
        raise ValueError(f"No {what}: the dataset gave no train scenes (check SceneConfig.min_history).")
    return rows, counts


def train_sft(config: SimulatorSFTConfig, examples: Sequence[dict[str, str]] | None = None) -> Path:
    """SFT (TRL ``SFTTrainer``, completion-only loss); returns the output directory. ``examples``
    overrides the scene-built data (prompt/completion dicts)."""
    from datasets import Dataset as HFDataset
    from trl import SFTConfig, SFTTrainer

    from recsim_env.data import load_dataset

    started = time.time()
    model, tokenizer, peft_config = _model_and_peft(config)
    examples, counts = _data(examples, lambda: sft_examples(load_dataset(config.dataset), tokenizer, config), "SFT examples")
    _check_lengths(tokenizer, [e["prompt"] + e["completion"] for e in examples], config.max_length)
    args = SFTConfig(**_common_args(config), completion_only_loss=True, shuffle_dataset=False)
    trainer = SFTTrainer(
        model=model, args=args, train_dataset=HFDataset.from_list(list(examples)), processing_class=tokenizer,
        peft_config=peft_config,
    )
    return _run(trainer, config, "sft", counts, started)


def train_dpo(config: SimulatorDPOConfig) -> Path:
    """DPO (TRL ``DPOTrainer``) on the pairs file; returns the output directory."""
    from datasets import Dataset as HFDataset
    from trl import DPOConfig, DPOTrainer

    started = time.time()
    rows = _read_jsonl(config.pairs)
    bad = [i for i, r in enumerate(rows) if not all(isinstance(r.get(k), str) and r.get(k) for k in ("prompt", "chosen", "rejected"))]
    if bad or not rows:
        raise ValueError(
            f"{config.pairs}: every row needs non-empty string 'prompt', 'chosen' and 'rejected' "
            f"({'no rows' if not rows else f'rows {bad[:5]} do not'})."
        )
    model, tokenizer, peft_config = _model_and_peft(config)
    _check_lengths(tokenizer, [r["prompt"] + max(r["chosen"], r["rejected"], key=len) for r in rows], config.max_length)
    args = DPOConfig(**_common_args(config), beta=config.beta)
    data = HFDataset.from_list([{k: r[k] for k in ("prompt", "chosen", "rejected")} for r in rows])
    trainer = DPOTrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer, peft_config=peft_config)
    return _run(trainer, config, "dpo", {"pairs": len(rows)}, started)


def train_grpo(config: SimulatorGRPOConfig, rows: Sequence[dict] | None = None, extra_rewards: Sequence = ()) -> Path:
    """GRPO (TRL ``GRPOTrainer``; ``GroupAwareGRPOTrainer`` for ``gagrpo``) with the configured reward design;
    returns the output directory. Each reward component is logged (``rewards/<name>/mean``), malformed
    completions as ``malformed`` (their share of a batch). ``rows`` overrides the scene-built prompts;
    ``extra_rewards`` are further TRL reward functions (weight 1) added to the design's."""
    from datasets import Dataset as HFDataset
    from trl import GRPOConfig, GRPOTrainer

    from recsim_env.data import load_dataset
    from simulators.training.group_grpo import GroupAwareGRPOTrainer
    from simulators.training.rewards import reward_functions

    started = time.time()
    model, tokenizer, peft_config = _model_and_peft(config)
    rows, counts = _data(rows, lambda: grpo_rows(load_dataset(config.dataset), tokenizer, config), "GRPO prompts")
    _check_lengths(tokenizer, [r["prompt"] for r in rows], config.max_length - config.max_completion_length)
    funcs, weights = reward_functions(config.rewards, config.reward_config)
    funcs, weights = [*funcs, *extra_rewards], [*weights, *[1.0] * len(extra_rewards)]
    common = _common_args(config)
    common.pop("max_length")
    args = GRPOConfig(
        **common, num_generations=config.num_generations, max_completion_length=config.max_completion_length,
        temperature=config.temperature, beta=config.beta, reward_weights=weights,
        **({"use_vllm": True, "vllm_mode": "colocate"} if config.use_vllm else {}),
    )
    kwargs = dict(model=model, reward_funcs=funcs, args=args, train_dataset=HFDataset.from_list(list(rows)),
                  processing_class=tokenizer, peft_config=peft_config)
    if config.rewards == "gagrpo":
        trainer = GroupAwareGRPOTrainer(**kwargs, role_weights=config.role_weights)
    else:
        trainer = GRPOTrainer(**kwargs)
    return _run(trainer, config, "grpo", counts, started)


def config_from_args(cls, values: dict):
    """A config from CLI-style ``{name: value}`` (None values left at their defaults); unknown names are errors."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{cls.__name__} has no field(s) {unknown}; known: {sorted(known)}.")
    return cls(**{k: v for k, v in values.items() if v is not None})
