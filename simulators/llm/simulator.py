"""``LLMUserSimulator``: a language model answers as the user, scored option by option.

Per request (one user, one slate) and per mode:

* page: one scored question gives the distribution over the slate letters and "None of these";
  already-consumed/duplicate options are masked out and the rest renormalised; a choice is drawn
  with the request's rng (``greedy=True``: argmax). For the clicked item a second question gives
  its rating (rated data) or watched fraction, from which the watch ratio follows.
* feed: per item, a judge question (watch / skip); then, per item, a follow-up given the drawn
  judgement: the reason class for a skip, the rating / watched fraction for a watch. A watched
  item whose rating maps below the skip threshold (MovieLens: <= 2 stars) is still a fast skip;
  it was not asked for a reason, so its ``reason_class`` is None (unknown), never a guess.
  Repeated items are skipped without asking (reason class "algorithm-driven", by rule).

With decision heads (``heads=``, :mod:`simulators.llm.heads`) the heads decide instead of the answer letters, from
the model's cached item states and the collaborative cues: feed P(skip) = 1 - P(interested) P(value not a skip),
the reason class from the reason head and the value from the value head (restricted to non-skip values for a
watch); page: a softmax over the slate's interest logits and "none" at logit 0, then the clicked item's value. The
same uniforms are drawn as without heads.

Randomness: each request draws exactly ``3`` (page) or ``3 * K`` (feed) uniforms from its rng.

Unusable answers: an answer whose probability mass on the option letters is below
``min_option_mass`` is an error; so is a generated reason with fewer than 3 letters. Errors are
counted in ``response.errors`` (and the env's ``info["simulator_errors"]``). ``on_error="raise"``
raises :class:`LLMOutputError`; ``on_error="fallback"`` answers that request with the data-fitted
simulator instead (named in ``response.extra["fallback"]``), or drops an unreadable reason text
(``None``). Nothing is ever replaced silently by a default.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass, fields
from typing import Literal, Sequence

import numpy as np

from recsim_env.data import Dataset
from simulators.base import SimulationRequest, SimulationResponse
from simulators.llm.models import DEFAULT_MODEL, compile_elementwise, load_model, trained_answer_format, trained_history_in_prompt
from simulators.llm.prompts import ANSWER_FORMATS, GUBS_TAXONOMY, LETTERS, ChatFormat, ReasonClass, SceneBuilder
from simulators.llm.backends import BACKENDS, BackendError
from simulators.llm.scoring import KVStore, TreeScorer, option_token_ids

__all__ = ["LLMOutputError", "LLMSimulatorConfig", "LLMUserSimulator"]


class LLMOutputError(RuntimeError):
    """The model's answer could not be used (too little mass on the options, unreadable reason)."""


@dataclass(frozen=True)
class LLMSimulatorConfig:
    """Behaviour of the LLM simulator (model choice is given to the constructor).

    batch_size: users per forward batch (requests are bucketed by prompt length). On a 2-core CPU 8 to 32
        perform alike and 64 is slower (benchmarks/results/throughput_llm.md: masked attention over long batches).
    history_in_prompt: memory items shown in the prompt; None: as many as the adapter was trained with
        (its training card), else 10. A prompt unlike the training prompts degrades a trained adapter.
    answer_format: ``"letters"`` (answers are option letters, ``Judge: [B]``) or ``"think"`` (GRPO's
        ``<think>...</think><answer>Judge: skip; Reason: [B]</answer>``, scored after an empty thinking text and
        the field name: the judgement is the word " watch" / " skip"); None: as the adapter was trained (its
        training card), else "letters".
    explain: when to generate a first-person reason: "never", "negative" (skips / empty pages), "always".
    explain_style: "reason" (one sentence) or "decision_process" (UserMirrorer's Stimulus, Knowledge,
        Evaluation, ending with the behaviour), returned as ``reason_text``.
    reason_max_tokens: length bound of generated reasons (a decision process gets 3x this bound).
    taxonomy: reason classes for skips as ``(name, one-line description)`` pairs (default G-UBS:
        content-driven, algorithm-driven, user-driven).
    min_option_mass: least probability mass on the option letters for an answer to count as valid.
    on_error: "raise" or "fallback" (data-fitted simulator for that request; see module doc).
    greedy: take the most likely option instead of sampling.
    cache_size: bounded cache of scored distributions, keyed by the full prompt text.
    compile: ``torch.compile`` the MLP and norm modules (fuses their element-wise ops; ~25% faster
        forwards on a 2-core CPU after a one-time ~25 s compile). Worth it for long rollouts.
    heads: decision heads (:mod:`simulators.llm.heads`; a directory or a shipped name) that decide from the
        model's hidden states instead of its answer letters: interest, rating and reason of every shown item in
        one pass. None: the answer letters decide. The heads fix the memory length of the reason prompts.
    backend: where the answer letters are scored (:mod:`simulators.llm.backends`): "torch" (in-process tree scorer)
        or "vllm" (an OpenAI-compatible vLLM server serving the same model at ``base_url``, e.g.
        ``http://127.0.0.1:8000/v1``; ``served_model`` None: the first model it lists). An unreachable or failing
        server is an unusable answer, handled by ``on_error``. Heads need "torch" (a server returns no hidden states).
    request_timeout / request_retries: seconds per HTTP call and extra attempts (vllm backend).
    kv_cache_tokens: context tokens whose keys and values are kept across steps, per user, least recently used
        evicted (torch backend; :class:`~simulators.llm.scoring.KVStore`): a user's next context runs only from
        where it first differs from the kept one. Exact (fp32 noise); memory: SmolLM2-135M 46 KB per token in fp32
        (the default 65,536 tokens, at most ~3 GB; 64 envs with 30-line memories need ~50,000: a store smaller than
        what one vector step touches is cycled through and reuses nothing). 0 keeps nothing.
    memory_growth: 0 shows the last ``history_in_prompt`` memory items (a sliding window, as the adapters were
        trained); G > 0 lets the shown memory grow append-only by up to G items before it restarts
        (:meth:`~simulators.llm.prompts.SceneBuilder.shown_memory`), so kept contexts are extended instead of
        recomputed. Changes the prompt (between history_in_prompt and history_in_prompt + G lines): opt in.
    perception: a folder written by ``recsim perceive`` (:mod:`simulators.perception`): each item's line in the
        exposure list and feed questions carries its video caption.
    """

    batch_size: int = 8
    history_in_prompt: int | None = None
    answer_format: Literal["letters", "think"] | None = None
    explain: Literal["never", "negative", "always"] = "never"
    explain_style: Literal["reason", "decision_process"] = "reason"
    reason_max_tokens: int = 24
    taxonomy: tuple[tuple[str, str], ...] = tuple((c.name, c.description) for c in GUBS_TAXONOMY)
    min_option_mass: float = 0.2
    on_error: Literal["raise", "fallback"] = "fallback"
    greedy: bool = False
    cache_size: int = 4096
    compile: bool = False
    heads: str | None = None
    backend: Literal["torch", "vllm"] = "torch"
    base_url: str | None = None
    served_model: str | None = None
    request_timeout: float = 60.0
    request_retries: int = 2
    kv_cache_tokens: int = 65536
    memory_growth: int = 0
    perception: str | None = None

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {self.backend!r}.")
        if self.backend == "vllm" and not self.base_url:
            raise ValueError("backend='vllm' needs base_url, the server's OpenAI-compatible URL, e.g. "
                             "'http://127.0.0.1:8000/v1' (start one with `recsim serve-simulator`).")
        if self.backend == "vllm" and self.heads is not None:
            raise ValueError("Decision heads read the model's hidden states, which a vLLM server does not return: use "
                             "backend='torch' with heads, or heads=None with backend='vllm' (the answer letters decide).")
        if self.explain not in ("never", "negative", "always"):
            raise ValueError(f"explain must be 'never', 'negative' or 'always', got {self.explain!r}.")
        if self.explain_style not in ("reason", "decision_process"):
            raise ValueError(f"explain_style must be 'reason' or 'decision_process', got {self.explain_style!r}.")
        if not 2 <= len(self.taxonomy) <= len(LETTERS) or not all(len(c) == 2 and all(c) for c in self.taxonomy):
            raise ValueError(
                f"taxonomy must hold 2 to {len(LETTERS)} (name, description) pairs, e.g. "
                f"(('content-driven', 'the item is unappealing'), ...); got {self.taxonomy!r}."
            )
        if self.on_error not in ("raise", "fallback"):
            raise ValueError(f"on_error must be 'raise' or 'fallback', got {self.on_error!r}.")
        if not 0.0 <= self.min_option_mass < 1.0:
            raise ValueError(f"min_option_mass must be in [0, 1), got {self.min_option_mass}.")
        if self.answer_format is not None and self.answer_format not in ANSWER_FORMATS:
            raise ValueError(f"answer_format must be 'letters', 'think' or None (as the adapter was trained), got {self.answer_format!r}.")
        if self.history_in_prompt is not None and self.history_in_prompt < 0:
            raise ValueError(f"history_in_prompt must be >= 0 or None, got {self.history_in_prompt}.")
        if self.batch_size < 1 or self.reason_max_tokens < 1:
            raise ValueError("batch_size and reason_max_tokens must be >= 1.")
        if self.kv_cache_tokens < 0 or self.memory_growth < 0:
            raise ValueError(f"kv_cache_tokens and memory_growth must be >= 0 (0: off), got {self.kv_cache_tokens} and "
                             f"{self.memory_growth}.")


class _Row:
    """Working state of one request while it is answered."""

    def __init__(self, request: SimulationRequest, uniforms: np.ndarray, context: str) -> None:
        self.r = request
        self.u = uniforms
        self.context = context
        self.ids: list[int] | None = None  # the context's token ids, where already encoded
        k = len(request.slate)
        self.played = np.zeros(k, bool)
        self.clicked = np.zeros(k, bool)
        self.skipped = np.zeros(k, bool)
        self.watch = np.full(k, np.nan)
        self.rating = np.full(k, np.nan)
        self.reason_class: list[str | None] = [None] * k
        self.reason_text: list[str | None] = [None] * k
        self.choice_probs: np.ndarray | None = None
        self.skip_probs: np.ndarray | None = None
        self.choice = k  # page mode: chosen option (k = "none")
        self.judge = np.zeros(k, bool)  # feed mode: judged a skip
        self.errors = 0
        self.min_mass = 1.0
        self.backend_error: str | None = None


class LLMUserSimulator:
    """A pretrained (or fine-tuned) causal LM as the user; see the module docstring.

    model: "smollm2-135m" (default, offline), a local checkpoint directory or a Hugging Face id.
    adapter: a PEFT/LoRA adapter directory applied on top, or None.
    dataset: the dataset whose items/users the prompts describe (the env binds its own).
    """

    name = "llm"

    def __init__(
        self, model: str = DEFAULT_MODEL, adapter: str | None = None, dtype: str = "bfloat16", device: str = "cpu",
        dataset: Dataset | None = None, config: LLMSimulatorConfig | dict | None = None, **overrides,
    ) -> None:
        if isinstance(config, dict):
            overrides = {**config, **overrides}
            config = None
        known = {f.name for f in fields(LLMSimulatorConfig)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise TypeError(f"Unknown LLMUserSimulator option(s) {unknown}; known: {sorted(known)}.")
        base = config or LLMSimulatorConfig()
        self.config = LLMSimulatorConfig(**{**{f.name: getattr(base, f.name) for f in fields(base)}, **overrides})
        self.model_name, self.adapter = model, adapter
        trained = trained_history_in_prompt(adapter)
        self.heads = None
        if self.config.heads is not None:
            from simulators.llm.heads import DecisionHeads, HeadMismatchError

            self.heads = DecisionHeads.load(self.config.heads)
            spec = self.heads.spec
            if self.config.history_in_prompt not in (None, spec.history_in_prompt):
                raise HeadMismatchError(
                    f"heads={self.config.heads!r} were trained with history_in_prompt={spec.history_in_prompt}; "
                    f"leave history_in_prompt unset (the heads fix the prompt)."
                )
            trained = spec.history_in_prompt
        self.history_in_prompt = next(h for h in (self.config.history_in_prompt, trained, 10) if h is not None)
        self.answer_format = next(f for f in (self.config.answer_format, trained_answer_format(adapter), "letters") if f)
        if self.heads is not None:
            self.heads.check(model, adapter, self.history_in_prompt, self.answer_format)
        self.model, self.tokenizer = load_model(model, adapter=adapter, dtype=dtype, device=device)
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        if self.config.compile:
            compile_elementwise(self.model)
        self.chat = ChatFormat(self.tokenizer)
        self._cache: OrderedDict[str, tuple[np.ndarray, float]] = OrderedDict()
        self.cache_hits = 0
        self.dataset: Dataset | None = None
        self._fallback = None
        self._item_states = None
        self._keeping = False  # this call keeps contexts across steps (respond sets it)
        if dataset is not None:
            self.bind(dataset)

    def __repr__(self) -> str:
        heads = f", heads={self.config.heads!r}" if self.heads is not None else ""
        return f"LLMUserSimulator(model={self.model_name!r}, adapter={self.adapter!r}{heads})"

    def bind(self, dataset: Dataset) -> "LLMUserSimulator":
        """Attach the dataset whose items and users the prompts describe."""
        if self.dataset is dataset:
            return self
        self.dataset = dataset
        self.scenes = SceneBuilder(
            dataset, self.chat, history_in_prompt=self.history_in_prompt, answer_format=self.answer_format,
            taxonomy=tuple(ReasonClass(name, description) for name, description in self.config.taxonomy),
            memory_growth=self.config.memory_growth, captions=self._captions(dataset),
        )
        if self.config.backend == "vllm":
            from simulators.llm.backends import VLLMScorer

            c = self.config
            self.scorer = VLLMScorer(c.base_url, self.tokenizer, self.scenes.system(), c.served_model, c.request_timeout,
                                     c.request_retries)
            self.reader = None
        else:
            self.scorer = TreeScorer(self.model, self.tokenizer, self.scenes.system(), KVStore(self.config.kv_cache_tokens))
            from simulators.llm.heads import HiddenStateReader

            self.reader = HiddenStateReader(self.scorer)
        if self.heads is not None:
            sc, spec = self.scenes, self.heads.spec
            if (sc.n_values, len(sc.taxonomy)) != (spec.n_values, spec.n_reasons):
                from simulators.llm.heads import HeadMismatchError

                raise HeadMismatchError(f"The heads have {spec.n_values} value levels and {spec.n_reasons} reasons; this dataset's "
                                        f"prompt has {sc.n_values} and {len(sc.taxonomy)}: train heads on this dataset.")
        sc = self.scenes
        self.letters = {
            "page": option_token_ids(self.tokenizer, len(LETTERS), sc.page_prefix),
            "judge": option_token_ids(self.tokenizer, 2, sc.judge_prefix, labels=sc.judge_labels),
            "reason": option_token_ids(self.tokenizer, len(sc.taxonomy), sc.follow_up(1, skipped=True)),
            "value": option_token_ids(self.tokenizer, sc.n_values, sc.follow_up(0, skipped=False)),
        }
        if self.config.backend == "vllm":  # refuse a server of another model or adapter before it answers wrongly
            probes = [self.scorer.system_ids + ids for ids in self.scorer.encode([sc.feed_branch(i) for i in range(2)])]
            self.scorer.check_model(self.model, probes, self.letters["judge"])
        self._cache.clear()
        self._item_states = None
        return self

    def _captions(self, dataset: Dataset) -> dict[int, str] | None:
        if self.config.perception is None:
            return None
        from simulators.perception import load_captions

        return load_captions(self.config.perception, dataset)

    def close(self) -> None:
        """Drop what is kept between steps: the kept contexts' keys and values and the cached distributions."""
        store = getattr(getattr(self, "scorer", None), "kv_store", None)
        if store is not None:
            store.clear()
        self._cache.clear()

    @property
    def fallback(self):
        if self._fallback is None:
            from simulators.fitted import FittedUserModel

            self._fallback = FittedUserModel.fit(self.dataset)
        return self._fallback

    # ------------------------------------------------------------------------- scoring core
    def _cached(self, key: str):
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            self.cache_hits += 1
        return hit

    def _store(self, key: str, value) -> None:
        if self.config.cache_size <= 0:
            return
        self._cache[key] = value
        if len(self._cache) > self.config.cache_size:
            self._cache.popitem(last=False)

    def _branches(self, rows: list[_Row], texts: list[list[str]], options: list[list[list[int]]], state: dict):
        """First round: all branches of all rows in one tree pass (or from the cache)."""
        keys = [hashlib.sha1((r.context + "\x01" + "\x00".join(t)).encode()).hexdigest() for r, t in zip(rows, texts)]
        hits = [self._cached(k) for k in keys]
        state.update(keys=keys, texts=texts, options=options, tree=None)
        if all(h is not None for h in hits):
            return [h[0] for h in hits], np.stack([h[1] for h in hits])
        dists, mass = self._build_tree(rows, state)
        for k, d, m in zip(keys, dists, mass):
            self._store(k, (d, m))
        return dists, mass

    def _batch_key(self, row: _Row) -> tuple[int, int]:
        """Sort key of a row among its mode's rows: the context tokens it will run (with kept contexts: those after the
        kept prefix), then its length."""
        if not self._keeping:
            return 0, len(row.context)
        row.ids = self.scorer.encode([row.context])[0]
        return len(row.ids) - self.scorer.kv_store.peek(row.r.user, row.ids), len(row.ids)

    def _build_tree(self, rows: list[_Row], state: dict):
        enc = self.scorer.encode
        branches = [enc(t) for t in state["texts"]]
        contexts = [r.ids if r.ids is not None else enc([r.context])[0] for r in rows]
        dists, mass, tree = self.scorer.score(contexts, branches, state["options"], sessions=[r.r.user for r in rows])
        state["tree"] = tree
        return dists, mass

    def _follow(self, rows: list[_Row], texts: list[list[str]], options: list[list[list[int]]], state: dict):
        """Second round: one follow-up per branch ('' for none) on top of the first round's cache."""
        keys = [hashlib.sha1((k + "\x02" + "\x00".join(t)).encode()).hexdigest() for k, t in zip(state["keys"], texts)]
        hits = [self._cached(k) for k in keys]
        if all(h is not None for h in hits):
            return [h[0] for h in hits], np.stack([h[1] for h in hits])
        if state["tree"] is None:
            self._build_tree(rows, state)
        follow = [[self.scorer.encode([t])[0] if t else [] for t in row] for row in texts]
        dists, mass = self.scorer.follow_up(state["tree"], follow, options)
        for k, d, m in zip(keys, dists, mass):
            self._store(k, (d, m))
        return dists, mass

    def _draw(self, p: np.ndarray, u: float) -> int:
        if self.config.greedy:
            return int(np.argmax(p))
        return int(min(np.searchsorted(np.cumsum(p), u, side="right"), len(p) - 1))

    # ------------------------------------------------------------------------ decision heads
    def head_outputs(self, requests: Sequence[SimulationRequest]) -> list[dict[str, np.ndarray]]:
        """The decision heads' answer for every slate item of each request (interest logit and probability, value
        and reason distributions, P(skip)); deterministic, cached by prompt text."""
        from simulators.llm.heads import cue_features, item_states, llm_features

        if self.heads is None:
            raise RuntimeError("This LLMUserSimulator has no decision heads (heads=None).")
        spec = self.heads.spec
        if "llm" in spec.inputs and self._item_states is None:
            self._item_states = item_states(self, progress=True)
        keys = [hashlib.sha1(b"\x03" + b"".join(np.ascontiguousarray(a).tobytes() for a in (
            np.int64(r.user), r.history_items, r.history_watch_ratio, r.history_skipped, r.slate))).hexdigest() for r in requests]
        hits = [self._cached(k) for k in keys]
        todo = [i for i, h in enumerate(hits) if h is None]
        if todo:
            groups: dict[int, list[int]] = {}
            for i in todo:
                groups.setdefault(len(requests[i].slate), []).append(i)
            for idx in groups.values():
                reqs = [requests[i] for i in idx]
                slates = np.stack([r.slate for r in reqs]).astype(np.int64)
                llm = llm_features(self._item_states, spec.pool, reqs, slates, spec.decay) if "llm" in spec.inputs else None
                cues = cue_features(self.fallback, reqs, slates) if "cues" in spec.inputs else None
                out = self.heads.predict(self.heads.inputs(llm, cues))
                for n, i in enumerate(idx):
                    hits[i] = {key: value[n] for key, value in out.items()}
                    self._store(keys[i], hits[i])
        return hits

    def expected_ratings(self, requests: Sequence[SimulationRequest]) -> list[np.ndarray]:
        """Each slate item's expected rating if the user watches it, from the decision heads' value distribution over
        the rating levels; NaN without heads or ratings (the letters path gives no distribution to average)."""
        if self.heads is None or not self.scenes.rated:
            return [np.full(len(r.slate), np.nan) for r in requests]
        levels = np.asarray(self.scenes.levels, np.float64)
        return [np.asarray(o["values"], np.float64) @ levels for o in self.head_outputs(requests)]

    def _page_heads(self, rows: list[_Row]) -> None:
        for row, o in zip(rows, self.head_outputs([row.r for row in rows])):
            allowed = ~np.asarray(row.r.repeated, bool)
            z = np.append(np.where(allowed, o["logit"], -np.inf), 0.0)  # outside option "none": logit 0
            p = np.exp(z - z.max())
            row.choice_probs = p / p.sum()
            row.choice = self._draw(row.choice_probs, row.u[0])
            if row.choice < len(row.r.slate):
                j = row.choice
                ratio, rating = self.scenes.value_to_ratio(self._draw(o["values"][j], row.u[1]), row.u[2])
                row.played[j] = row.clicked[j] = True
                row.watch[j], row.rating[j] = ratio, rating
                row.skipped[j] = ratio < self.dataset.thresholds.skip_below

    def _feed_heads(self, rows: list[_Row]) -> None:
        k = len(rows[0].r.slate)
        first = self.heads.spec.skip_value
        skip_below = self.dataset.thresholds.skip_below
        for row, o in zip(rows, self.head_outputs([row.r for row in rows])):
            rep = np.asarray(row.r.repeated, bool)
            row.played[:] = True
            row.skip_probs = np.where(rep, 1.0, o["skip"])
            for j in range(k):
                skip = rep[j] or self._draw(np.array([1.0 - o["skip"][j], o["skip"][j]]), row.u[j]) == 1
                row.judge[j] = skip
                if rep[j]:
                    row.reason_class[j] = "algorithm-driven"  # by rule: the item repeats what was consumed/shown
                elif skip:
                    row.reason_class[j] = self.scenes.taxonomy[self._draw(o["reasons"][j], row.u[k + j])].name
                if skip:
                    row.watch[j] = row.u[2 * k + j] * skip_below
                    continue
                kept = o["values"][j][first:] / o["values"][j][first:].sum()
                row.watch[j], row.rating[j] = self.scenes.value_to_ratio(first + self._draw(kept, row.u[k + j]), row.u[2 * k + j])
            row.skipped = row.judge | (row.watch < skip_below)
            row.clicked = ~row.skipped

    # ------------------------------------------------------------------------------ modes
    def _page(self, rows: list[_Row], state: dict) -> None:
        texts, options = [], []
        for row in rows:
            text, n = self.scenes.page_branch(row.r)
            texts.append([text])
            options.append([self.letters["page"][:n]])
        dists, mass = self._branches(rows, texts, options, state)
        for row, d, m in zip(rows, dists, mass):
            row.min_mass = min(row.min_mass, float(m[0]))
            allowed = np.append(~np.asarray(row.r.repeated, bool), True)
            p = np.where(allowed, d[0], 0.0)
            p = p / p.sum() if p.sum() > 0 else allowed / allowed.sum()
            row.choice_probs = p
            row.choice = self._draw(p, row.u[0])
        clicked = [row.choice < len(row.r.slate) for row in rows]
        if not any(clicked):
            return
        follow = [[self.scenes.follow_up(row.choice) if c else ""] for row, c in zip(rows, clicked)]
        opts = [[self.letters["value"] if c else []] for c in clicked]
        dists, mass = self._follow(rows, follow, opts, state)
        for row, c, d, m in zip(rows, clicked, dists, mass):
            if not c:
                continue
            row.min_mass = min(row.min_mass, float(m[0]))
            j = row.choice
            ratio, rating = self.scenes.value_to_ratio(self._draw(d[0], row.u[1]), row.u[2])
            row.played[j] = row.clicked[j] = True
            row.watch[j], row.rating[j] = ratio, rating
            row.skipped[j] = ratio < self.dataset.thresholds.skip_below

    def _feed(self, rows: list[_Row], state: dict) -> None:
        k = len(rows[0].r.slate)
        texts = [[self.scenes.feed_branch(int(i)) for i in row.r.slate] for row in rows]
        dists, mass = self._branches(rows, texts, [[self.letters["judge"]] * k for _ in rows], state)
        for row, d, m in zip(rows, dists, mass):
            rep = np.asarray(row.r.repeated, bool)
            row.played[:] = True
            row.skip_probs = np.where(rep, 1.0, np.array([p[1] for p in d]))
            row.judge = np.array([rep[j] or self._draw(d[j], row.u[j]) == 1 for j in range(k)])
            if (~rep).any():
                row.min_mass = min(row.min_mass, float(m[~rep].min()))
        follow = [[self.scenes.follow_up(1 if row.judge[j] else 0, skipped=bool(row.judge[j])) for j in range(k)] for row in rows]
        opts = [[self.letters["reason"] if row.judge[j] else self.letters["value"] for j in range(k)] for row in rows]
        dists, mass = self._follow(rows, follow, opts, state)
        skip_below = self.dataset.thresholds.skip_below
        for row, d, m in zip(rows, dists, mass):
            rep = np.asarray(row.r.repeated, bool)
            if (~rep).any():
                row.min_mass = min(row.min_mass, float(m[~rep].min()))
            for j in range(k):
                if rep[j]:
                    row.reason_class[j] = "algorithm-driven"  # by rule: the item repeats what was consumed/shown
                    row.watch[j] = row.u[2 * k + j] * skip_below
                    continue
                option = self._draw(d[j], row.u[k + j])
                if row.judge[j]:
                    row.reason_class[j] = self.scenes.taxonomy[option].name
                    row.watch[j] = row.u[2 * k + j] * skip_below
                else:
                    row.watch[j], row.rating[j] = self.scenes.value_to_ratio(option, row.u[2 * k + j])
            row.skipped = row.judge | (row.watch < skip_below)
            row.clicked = ~row.skipped

    # ----------------------------------------------------------------------------- reasons
    def _explain(self, rows: list[_Row], mode: str) -> None:
        policy = self.config.explain
        if policy == "never":
            return
        ask = self.scenes.decision_process_prompt if self.config.explain_style == "decision_process" else self.scenes.reason_prompt
        jobs: list[tuple[_Row, int | None, tuple[str, str]]] = []
        for row in rows:
            if mode == "page":
                hit = np.flatnonzero(row.clicked)
                if len(hit) and policy == "always":
                    jobs.append((row, int(hit[0]), ask(row.r, int(row.r.slate[hit[0]]), True)))
                elif not len(hit):
                    jobs.append((row, None, ask(row.r, None, False)))
            else:
                for j in range(len(row.r.slate)):
                    if row.skipped[j] or policy == "always":
                        jobs.append((row, j, ask(row.r, int(row.r.slate[j]), not row.skipped[j])))
        if not jobs:
            return
        process = self.config.explain_style == "decision_process"
        budget = self.config.reason_max_tokens * (3 if process else 1)
        prompts = [prompt for _, _, (prompt, _) in jobs]
        texts = self.scorer.generate(prompts, budget) if self.config.backend == "vllm" else self.generate(prompts, budget)
        for (row, j, (_, start)), text in zip(jobs, texts):
            generated = " ".join(text.split()) if process else text.strip().split("\n")[0].strip()
            if sum(ch.isalpha() for ch in generated) < 3:  # the given answer start does not count
                row.errors += 1
                if self.config.on_error == "raise":
                    raise LLMOutputError(f"Unreadable generated reason {text!r} for user {row.r.user}.")
                continue
            reason = f"{start} {generated}"
            if j is None:
                row.reason_text = [reason] * len(row.r.slate)
            else:
                row.reason_text[j] = reason

    def generate(self, prompts: Sequence[str], max_new_tokens: int, samples: int = 0, temperature: float = 1.0) -> list[str]:
        """Generation for full prompts (left-padded batches): greedy, one text per prompt; or with
        ``samples > 0``, that many sampled texts per prompt (``temperature``; seed torch for reproducibility),
        prompt by prompt in order."""
        import torch

        tok = self.tokenizer
        out: list[str] = []
        n = max(samples, 1)
        bs = max(1, self.config.batch_size // n)
        for start in range(0, len(prompts), bs):
            enc = [tok(p, add_special_tokens=False)["input_ids"] for p in prompts[start : start + bs]]
            width = max(map(len, enc))
            ids = torch.full((len(enc), width), tok.pad_token_id, dtype=torch.long)
            mask = torch.zeros_like(ids)
            for i, e in enumerate(enc):
                ids[i, width - len(e) :] = torch.tensor(e)
                mask[i, width - len(e) :] = 1
            with torch.inference_mode():
                gen = self.model.generate(
                    input_ids=ids.to(self.model.device), attention_mask=mask.to(self.model.device),
                    max_new_tokens=max_new_tokens, pad_token_id=tok.pad_token_id, num_return_sequences=n,
                    **({"do_sample": True, "temperature": temperature} if samples else {"do_sample": False}),
                )
            out += tok.batch_decode(gen[:, width:], skip_special_tokens=True)
        return out

    def letter_probs(self, prompts: Sequence[str], n_letters: int, answer_prefix: str) -> np.ndarray:
        """(len(prompts), n_letters) distribution over the letters A.. that follow each full prompt (which
        ends with ``answer_prefix``): for judges outside the environment (e.g. the user-group reflect step).
        Each prompt runs alone (no cache, no padding)."""
        import torch

        from simulators.llm.scoring import option_token_ids

        ids = option_token_ids(self.tokenizer, n_letters, answer_prefix)
        out = np.zeros((len(prompts), n_letters))
        for i, prompt in enumerate(prompts):
            enc = torch.tensor([self.tokenizer(prompt, add_special_tokens=False)["input_ids"]], device=self.model.device)
            with torch.inference_mode():
                logits = self.model(input_ids=enc, logits_to_keep=1).logits[0, -1].float()
            out[i] = torch.softmax(logits[ids], -1).cpu().numpy()
        return out

    def reason_probs(self, requests: Sequence[SimulationRequest]) -> list[np.ndarray]:
        """Per feed item, the (n_classes,) reason distribution *given* a fast skip (the judge answer is
        forced to skip): what the simulator would say if this item were skipped. For evaluating reasons
        against labelled real skips; no randomness is drawn."""
        if self.dataset is None:
            raise RuntimeError("LLMUserSimulator is not bound to a dataset: pass dataset= or call .bind(dataset).")
        if self.heads is not None:
            return [o["reasons"] for o in self.head_outputs(requests)]
        rows = [_Row(r, np.zeros(0), self.scenes.context(r)) for r in requests]
        out: dict[int, np.ndarray] = {}
        groups: dict[int, list[int]] = {}
        for i, r in enumerate(requests):
            groups.setdefault(len(r.slate), []).append(i)
        for k, idx in groups.items():
            for start in range(0, len(idx), self.config.batch_size):
                part = idx[start : start + self.config.batch_size]
                chunk, state = [rows[i] for i in part], {}
                texts = [[self.scenes.feed_branch(int(i)) for i in row.r.slate] for row in chunk]
                self._branches(chunk, texts, [[self.letters["judge"]] * k for _ in chunk], state)
                follow = [[self.scenes.follow_up(1, skipped=True)] * k for _ in chunk]
                dists, _ = self._follow(chunk, follow, [[self.letters["reason"]] * k for _ in chunk], state)
                for i, d in zip(part, dists):
                    out[i] = np.stack(d)
        return [out[i] for i in range(len(requests))]

    # ----------------------------------------------------------------------------- respond
    def respond(
        self, requests: Sequence[SimulationRequest], rngs: Sequence[np.random.Generator]
    ) -> list[SimulationResponse]:
        if self.dataset is None:
            raise RuntimeError("LLMUserSimulator is not bound to a dataset: pass dataset= or call .bind(dataset).")
        if len(requests) != len(rngs):
            raise ValueError(f"respond() needs one Generator per request: got {len(requests)} requests, {len(rngs)} rngs.")
        store = getattr(self.scorer, "kv_store", None)
        self._keeping = store is not None and store.max_tokens > 0 and self.heads is None
        if self._keeping:
            store.begin_step()
        rows = []
        for r, rng in zip(requests, rngs):
            if r.mode not in ("page", "feed"):
                raise ValueError(f"SimulationRequest.mode must be 'page' or 'feed', got {r.mode!r}.")
            rows.append(_Row(r, rng.random(3 if r.mode == "page" else 3 * len(r.slate)), self.scenes.context(r)))
        groups: dict[tuple[str, int], list[_Row]] = {}
        for row in rows:
            groups.setdefault((row.r.mode, len(row.r.slate)), []).append(row)
        for (mode, _), group in groups.items():
            group = sorted(group, key=self._batch_key)  # rows that run alike share a batch (its pads are fewer)
            for start in range(0, len(group), self.config.batch_size):
                chunk = group[start : start + self.config.batch_size]
                state: dict = {}
                try:
                    if self.heads is not None:
                        (self._page_heads if mode == "page" else self._feed_heads)(chunk)
                    else:
                        (self._page if mode == "page" else self._feed)(chunk, state)
                except BackendError as err:
                    if self.config.on_error == "raise":
                        raise LLMOutputError(f"The scoring backend failed: {err}") from err
                    for row in chunk:  # unusable answers: counted, then answered by the fallback below
                        row.min_mass, row.backend_error = 0.0, str(err)
                    continue
                self._explain(chunk, mode)
        out = []
        for row, rng in zip(rows, rngs):
            if row.min_mass < self.config.min_option_mass or row.backend_error:
                row.errors += 1
                if self.config.on_error == "raise":
                    raise LLMOutputError(
                        f"Only {row.min_mass:.3f} of the model's probability fell on the option letters for user "
                        f"{row.r.user} (min_option_mass={self.config.min_option_mass}). Use a stronger/fine-tuned "
                        f"model, lower min_option_mass, or on_error='fallback'."
                    )
                resp = self.fallback.respond([row.r], [rng])[0]
                resp.errors = row.errors
                resp.extra = {"fallback": self.fallback.name, "option_mass": row.min_mass}
                if row.backend_error:
                    resp.extra["backend_error"] = row.backend_error
                out.append(resp)
                continue
            out.append(
                SimulationResponse(
                    played=row.played, clicked=row.clicked, skipped=row.skipped, watch_ratio=row.watch, rating=row.rating,
                    reason_class=row.reason_class if row.r.mode == "feed" else None,
                    reason_text=row.reason_text if self.config.explain != "never" else None,
                    choice_probs=row.choice_probs, skip_probs=row.skip_probs, errors=row.errors,
                    extra={"option_mass": row.min_mass},
                )
            )
        return out
