"""Decision heads: small trained read-outs of the language model's hidden states (and named numeric cues).

The language model's answer letters ignore the item (fidelity table: like/dislike ROC AUC ~0.5), yet its hidden
states at the item question carry item information (a linear probe reached 0.75 on 1,000 items). A head turns
them into the user's decisions:

* ``interest``: one logit per shown item. Feed: P(interested) = sigmoid(logit); page: a softmax over the slate's
  logits and an outside option "none" of logit 0 (the 1:1 calibration of the binary loss, an assumption);
* ``rating``: a distribution over the dataset's value levels (rating stars or watched-fraction bins) for a played
  item; a value below the skip threshold is a fast skip, so P(skip) = 1 - P(interested) * P(value >= threshold);
* ``reason``: the reason class of a skip (G-UBS taxonomy), trained on the data-derived labels.

Inputs (``HeadSpec.inputs``, each a named ablation):

* ``"llm"``: the language model's reading of the items (:func:`item_states`: each item's feed question run once,
  mean-pooled over its tokens at the final or the middle layer, ``pool``), with the user's side in the same space
  (:func:`llm_features`: the item's state times the user's profile, the mean state of the watched memory items,
  and cosines to the watched / skipped memory). Item states are computed once per catalogue and cached, so
  training sees tens of thousands of examples and a simulator step costs no forward pass. (In-context read-outs,
  one forward per user and step, measured ~3.7 items/s here in fp32, were out of this CPU's budget.);
* ``"cues"``: the collaborative numbers of :data:`CUE_NAMES` (the data-fitted model's features: taste affinity
  to watched / skipped memory items, popularity, mean rating, co-occurrence with the recent memory). For a train
  user every statistic leaves the user's own interactions out (no label leakage).

A head directory holds ``heads.safetensors`` and ``heads.json`` (the :class:`HeadSpec`: model, adapter, prompt
version, inputs, dimensions, standardisation); loading checks them against the simulator's model, adapter and
prompt, and fails with a clear error on a mismatch.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = [
    "CUE_NAMES", "HEADS_DIR", "POOLS", "PROMPT_VERSION", "DecisionHeads", "HeadMismatchError", "HeadSpec",
    "HiddenStateReader", "adapter_hash", "cue_features", "item_states", "item_states_path", "llm_features", "resolve_heads_dir",
]

# Bumped whenever the feed question text or the read-out changes: cached features and trained heads carry it.
PROMPT_VERSION = "feed-judge-v1"
POOLS = ("final", "mid")
CUE_NAMES = ("aff_pos", "aff_neg", "popularity", "mean_rating", "co_occurrence")
HEADS_DIR = Path(__file__).parent / "heads"  # heads trained by this repository's pipeline, with their cards


class HeadMismatchError(ValueError):
    """Decision heads do not fit the simulator they are loaded into (model, adapter, prompt or inputs differ)."""


@dataclass(frozen=True)
class HeadSpec:
    """What a set of decision heads reads and was trained on (stored as ``heads.json``).

    model / adapter: the language model (name or directory) and adapter the features come from.
    adapter_hash: content hash of the adapter weights ("" without an adapter).
    prompt_version: :data:`PROMPT_VERSION` at training time.
    history_in_prompt: the memory length of the prompts the simulator writes reasons from.
    inputs: subset of ("llm", "cues").
    pool: read-out of the hidden states (one of :data:`POOLS`), when "llm" is an input.
    hidden: width of the hidden layer (0: linear heads).
    n_values / n_reasons: sizes of the rating and reason heads.
    skip_value: first value level that is not a fast skip (values below it are skips).
    decay: recency decay of the cue features (the data-fitted model's).
    feature_dim: input width; mean / std: standardisation of the inputs.
    """

    model: str
    adapter: str | None
    adapter_hash: str
    prompt_version: str
    history_in_prompt: int
    inputs: tuple[str, ...]
    pool: str
    hidden: int
    n_values: int
    n_reasons: int
    skip_value: int
    decay: float
    feature_dim: int
    mean: tuple[float, ...] = field(repr=False, default=())
    std: tuple[float, ...] = field(repr=False, default=())

    def __post_init__(self) -> None:
        if not self.inputs or set(self.inputs) - {"llm", "cues"}:
            raise ValueError(f"inputs must be a non-empty subset of ('llm', 'cues'), got {self.inputs}.")
        if "llm" in self.inputs and self.pool not in POOLS:
            raise ValueError(f"pool must be one of {POOLS}, got {self.pool!r}.")


def adapter_hash(adapter: str | None) -> str:
    """sha256 (first 16 hex digits) of an adapter's weight files; "" without an adapter."""
    if adapter is None:
        return ""
    from simulators.llm.models import resolve_adapter_dir

    h = hashlib.sha256()
    for f in sorted(Path(resolve_adapter_dir(adapter)).glob("*.safetensors")):
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def resolve_heads_dir(heads: str) -> Path:
    """A heads directory, or the name of one shipped in ``simulators/llm/heads/``."""
    path = Path(heads).expanduser()
    if not path.is_dir() and (HEADS_DIR / heads).is_dir():
        path = HEADS_DIR / heads
    if not (path / "heads.json").is_file():
        shipped = sorted(p.name for p in HEADS_DIR.glob("*") if (p / "heads.json").is_file())
        raise FileNotFoundError(f"heads={heads!r} is not a directory holding heads.json nor one of the shipped heads {shipped}.")
    return path


# ------------------------------------------------------------------------------------------ features
class HiddenStateReader:
    """Pooled hidden states of every branch of a tree-scorer pass (see :class:`~simulators.llm.scoring.TreeScorer`).

    Forward hooks on the decoder's final norm and on its middle layer record the branch pass; each branch's real
    tokens are mean-pooled: (final layer, middle layer) = :data:`POOLS`.
    """

    def __init__(self, scorer) -> None:
        self.scorer = scorer
        decoder = scorer.model.get_decoder()
        self._norm = decoder.norm
        self._mid = decoder.layers[len(decoder.layers) // 2]
        self.dim = int(scorer.model.config.hidden_size)

    def read(self, contexts: Sequence[list[int]], branches: Sequence[Sequence[list[int]]]) -> np.ndarray:
        """(B, m, len(POOLS), dim) float32 mean-pooled states of ``branches[i][b]`` after ``contexts[i]``."""
        import torch

        seen: dict[str, list] = {"norm": [], "mid": []}
        hooks = [
            self._norm.register_forward_hook(lambda _m, _i, out: seen["norm"].append(out)),
            self._mid.register_forward_hook(lambda _m, _i, out: seen["mid"].append(out[0] if isinstance(out, tuple) else out)),
        ]
        options = [[[0]] * len(row) for row in branches]
        try:
            _, _, tree = self.scorer.score(contexts, branches, options)
        finally:
            for h in hooks:
                h.remove()
        bsz, m, w = len(contexts), tree.n_branches, tree.branch_width
        final = seen["norm"][-1].float().view(bsz, m, w, -1)  # the branch pass is the last call
        mid = seen["mid"][-1].float().view(bsz, m, w, -1)
        real = (torch.arange(w)[None, None, :] < tree.branch_len[:, :, None]).float()[..., None].to(final.device)
        n = real.sum(2).clamp(min=1.0)
        return torch.stack([(final * real).sum(2) / n, (mid * real).sum(2) / n], dim=2).cpu().numpy().astype(np.float32)


def _item_questions(simulator) -> list[str]:
    sc = simulator.scenes
    return [simulator.chat.ask(f"In your feed now: {sc.item_names[i]}", sc.judge_prefix) for i in range(sc.dataset.n_items)]


def item_states_path(simulator) -> Path:
    """Where :func:`item_states` caches a simulator's item states: a hash of everything they depend on."""
    from recsim_env.data import cache_dir

    h = hashlib.sha256()
    dtype = str(next(simulator.model.parameters()).dtype)
    for part in (simulator.model_name, adapter_hash(simulator.adapter), dtype, PROMPT_VERSION, simulator.scenes.system(),
                 *_item_questions(simulator)):
        h.update(part.encode() + b"\x00")
    return cache_dir() / "item_states" / f"{h.hexdigest()[:24]}.npy"


def item_states(simulator, batch: int = 32, progress: bool = False) -> np.ndarray:
    """(n_items, len(POOLS), dim) hidden states of every item's feed question read alone (no user context, item
    line without train statistics), cached on disk under ``$RECSIM_CACHE/item_states``.

    The cache key hashes the model name, the adapter's weights, the dtype, :data:`PROMPT_VERSION`, the system prompt
    and every item question text, so a changed model, adapter, prompt or dataset content can never read a stale file.
    """
    from tqdm.auto import tqdm

    texts = _item_questions(simulator)
    path = item_states_path(simulator)
    if path.is_file():
        return np.load(path)
    reader, enc = simulator.reader, simulator.scorer.encode
    out = []
    for start in tqdm(range(0, len(texts), batch), desc="item states", disable=not progress):
        out.append(reader.read([[]], [enc(texts[start : start + batch])])[0])
    states = np.concatenate(out).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npy")  # per process: parallel workers may write at once
    np.save(tmp, states)
    tmp.rename(path)  # atomic: a half-written cache is never read
    return states


def llm_features(states: np.ndarray, pool: str, requests, items: np.ndarray, decay: float, memory: int = 50) -> np.ndarray:
    """(N, K, 2 * dim + 2) language-model inputs of ``items`` (N, K): the item's state, its product with the user's
    profile (recency-weighted mean state of the watched memory items) and the cosines to the watched and the
    skipped memory profiles. Everything comes from the model's reading of item texts; no statistics."""
    from recsim_env.features import recency_weights
    from simulators.base import stack_memory

    x = states[:, POOLS.index(pool), :]
    x = x - x.mean(0, keepdims=True)  # centred: cosines then compare directions, not the shared offset
    hist, _, skipped = stack_memory(requests, memory)
    w = recency_weights(hist, decay)
    hx = x[np.maximum(hist, 0)]
    profiles = []
    for mask in (~skipped, skipped):
        p = np.einsum("nh,nhd->nd", w * mask, hx)
        profiles.append(p / np.maximum(np.linalg.norm(p, axis=1, keepdims=True), 1e-9))
    xi = x[np.asarray(items, dtype=np.int64)]
    unit = xi / np.maximum(np.linalg.norm(xi, axis=-1, keepdims=True), 1e-9)
    cos = np.stack([(unit * p[:, None, :]).sum(-1) for p in profiles], axis=-1)
    return np.concatenate([xi, xi * profiles[0][:, None, :], cos], axis=-1).astype(np.float32)


@functools.lru_cache(maxsize=4)
def _own_histories(dataset, window: int):
    from simulators.fitted import _OwnHistories

    return _OwnHistories(dataset, window)


def cue_features(fitted, requests, items: np.ndarray) -> np.ndarray:
    """(N, K, len(CUE_NAMES)) cue numbers of ``items`` (N, K) for ``requests``, from the data-fitted model ``fitted``.

    Train users' own interactions are left out of every statistic (popularity, mean rating, co-occurrence), as
    for a held-out user; valid and test users get the statistics the fitted model itself uses.
    """
    from recsim_env.features import CoOccurrence, item_stats_without, recency_weights, taste_profiles
    from simulators.base import stack_memory

    ds = fitted.dataset
    items = np.asarray(items, dtype=np.int64)
    hist, ratio, skipped = stack_memory(requests, fitted.config.memory)
    pos, neg, _ = taste_profiles(fitted.features, hist, ratio, skipped, fitted.decay)
    vec = fitted.features.text[items]
    aff_pos, aff_neg = (vec * pos[:, None, :]).sum(-1), (vec * neg[:, None, :]).sum(-1)
    users = np.array([r.user for r in requests], dtype=np.int64)
    train = ds.split[users] == ds.SPLITS["train"]
    pop = fitted.features.popularity[items].astype(np.float64)
    rating = fitted.features.mean_rating[items].astype(np.float64)
    top = np.log1p(fitted.features.count.max())
    for i in np.flatnonzero(train):
        count, mean = item_stats_without(ds, int(users[i]), items[i])
        pop[i], rating[i] = np.log1p(count) / max(top, 1e-9), mean
    co = np.zeros(items.shape)
    if fitted.co_occurrence is not None:
        pairs = fitted.co_occurrence.pair_affinity(hist, items)
        if train.any():
            own = _own_histories(ds, fitted.co_occurrence.window)
            t = np.flatnonzero(train)
            pairs[t] = fitted.co_occurrence.pair_affinity(hist[t], items[t], *own.contribution(users[t], hist[t], items[t]))
        co = CoOccurrence.weighted(pairs, recency_weights(hist, fitted.decay) * ~skipped)
    return np.stack([aff_pos, aff_neg, pop, rating - 0.5, co], axis=-1).astype(np.float32)


# --------------------------------------------------------------------------------------------- heads
class DecisionHeads:
    """Interest, rating and reason heads over standardised inputs (torch; a few thousand parameters)."""

    def __init__(self, spec: HeadSpec, state: dict | None = None, seed: int = 0) -> None:
        import torch

        self.spec = spec
        torch.manual_seed(seed)
        d, h = spec.feature_dim, spec.hidden
        self.body = torch.nn.Sequential(torch.nn.Linear(d, h), torch.nn.GELU()) if h else torch.nn.Identity()
        width = h or d
        self.out = torch.nn.ModuleDict({
            "interest": torch.nn.Linear(width, 1), "rating": torch.nn.Linear(width, spec.n_values),
            "reason": torch.nn.Linear(width, spec.n_reasons),
        })
        self.net = torch.nn.ModuleList([self.body, self.out])
        if state is not None:
            self.net.load_state_dict(state)
        self._mean = torch.tensor(spec.mean or [0.0] * d, dtype=torch.float32)
        self._std = torch.tensor(spec.std or [1.0] * d, dtype=torch.float32)

    def inputs(self, llm: np.ndarray | None, cues: np.ndarray | None) -> np.ndarray:
        """The head's input rows from :func:`llm_features` (..., 2 * dim + 2) and :func:`cue_features` (..., n_cues)."""
        parts = []
        if "llm" in self.spec.inputs:
            if llm is None:
                raise HeadMismatchError("These heads read the language model's hidden states; none were given.")
            parts.append(llm)
        if "cues" in self.spec.inputs:
            if cues is None:
                raise HeadMismatchError("These heads read the cue numbers; none were given.")
            parts.append(cues)
        x = np.concatenate(parts, axis=-1).astype(np.float32)
        if x.shape[-1] != self.spec.feature_dim:
            raise HeadMismatchError(f"Head input width {x.shape[-1]} != the trained width {self.spec.feature_dim}: "
                                    f"the heads were trained on another model or other inputs ({self.spec.inputs}).")
        return x

    def forward(self, x, standardised: bool = False):
        """Raw outputs (interest logit (...,), rating logits (..., n_values), reason logits (..., n_reasons)) of a tensor
        of input rows (``standardised``: already through :meth:`standardise`, as in training)."""
        z = self.body(x if standardised else self.standardise(x))
        return self.out["interest"](z)[..., 0], self.out["rating"](z), self.out["reason"](z)

    def standardise(self, x):
        return (x - self._mean) / self._std

    def predict(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Interest logit, P(interested), value and reason distributions, and P(skip) for input rows ``x`` (..., d)."""
        import torch

        with torch.inference_mode():
            logit, rating, reason = self.forward(torch.as_tensor(x, dtype=torch.float32))
        logit = logit.double().numpy()
        values = torch.softmax(rating.double(), -1).numpy()
        p_int = 1.0 / (1.0 + np.exp(-logit))
        return {
            "logit": logit, "interest": p_int, "values": values,
            "reasons": torch.softmax(reason.double(), -1).numpy(),
            "skip": 1.0 - p_int * values[..., self.spec.skip_value :].sum(-1),
        }

    # ---------------------------------------------------------------------------------- storage
    def save(self, path: str | Path, card: dict | None = None) -> Path:
        from safetensors.torch import save_file

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().contiguous() for k, v in self.net.state_dict().items()}, str(path / "heads.safetensors"))
        (path / "heads.json").write_text(json.dumps(asdict(self.spec), indent=1) + "\n")
        if card is not None:
            (path / "card.json").write_text(json.dumps(card, indent=2, default=str) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> "DecisionHeads":
        from safetensors.torch import load_file

        path = resolve_heads_dir(str(path))
        raw = json.loads((path / "heads.json").read_text())
        known = set(HeadSpec.__dataclass_fields__)
        if set(raw) - known:
            raise HeadMismatchError(f"{path}/heads.json has unknown keys {sorted(set(raw) - known)}: written by another version.")
        raw["inputs"], raw["mean"], raw["std"] = tuple(raw["inputs"]), tuple(raw["mean"]), tuple(raw["std"])
        return cls(HeadSpec(**raw), load_file(str(path / "heads.safetensors")))

    def check(self, model: str, adapter: str | None, history_in_prompt: int, answer_format: str) -> None:
        """Raise :class:`HeadMismatchError` unless these heads were trained on this model, adapter and prompt."""
        s = self.spec
        problems = []
        if "llm" in s.inputs:
            if model != s.model:
                problems.append(f"model {model!r} (heads: {s.model!r})")
            if adapter_hash(adapter) != s.adapter_hash:
                problems.append(f"adapter {adapter!r} (heads: {s.adapter!r})")
            if s.prompt_version != PROMPT_VERSION:
                problems.append(f"prompt version {PROMPT_VERSION!r} (heads: {s.prompt_version!r})")
            if history_in_prompt != s.history_in_prompt:
                problems.append(f"history_in_prompt {history_in_prompt} (heads: {s.history_in_prompt})")
            if answer_format != "letters":
                problems.append(f"answer_format {answer_format!r} (heads read the 'letters' prompt)")
        if problems:
            raise HeadMismatchError(
                "These decision heads were trained on another language-model setting: " + "; ".join(problems)
                + ". Load them with the model/adapter they name (heads.json), or train heads for this one "
                  "(`recsim train-simulator heads`)."
            )
