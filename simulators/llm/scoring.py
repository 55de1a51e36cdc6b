"""Option scoring without generation, with shared-prefix reuse by tree attention.

Every scored question is a *branch* that follows a user's *context*, which follows the *system*
prompt. For a batch of users the layout of one row is::

    [system (cached once)] [context_i] [branch_i1] [branch_i2] ... [branch_im]

The contexts of a batch run in one pass on the system prompt's cache, then ONE pass scores all
branches of all rows: each branch sees the system prompt, its row's context and itself (causally)
but not the other branches, and position ids restart after the context for every branch. The
attention is computed part by part without masks and merged exactly
(:mod:`simulators.llm.tree_attention`). So the system prompt is computed once per simulator, each context once
per step, and each item's question costs only its own tokens. A further pass
(:meth:`TreeScorer.follow_up`) appends one short follow-up per branch (e.g. the reason after a
skip) on top of the same KV cache.

Kept across steps (``kv_store``, a bounded :class:`KVStore`): each row may name a session (the simulator uses the
user); the context's keys and values are kept after the step, and the next step of that session runs only the
tokens after the longest common prefix of its new context with the kept one. Causal attention makes the reused
part exactly what a fresh pass would compute (fp32 noise), so a kept cache changes the cost, never the answer.

Only the positions that end a branch get logits (``logits_to_keep`` index tensor); a distribution
is the softmax restricted to the option letters shown, renormalised. The mass that fell on those
letters before renormalising is returned as a format-health signal.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

__all__ = ["KVStore", "Tree", "TreeScorer", "option_token_ids"]


def option_token_ids(tokenizer, n: int, prefix: str = "Behavior: [", labels: Sequence[str] | None = None) -> list[int]:
    """Token ids of the ``n`` option labels as they follow ``prefix``: the letters A.. by default, or ``labels``
    (e.g. the words " watch", " skip").

    Raises ValueError naming the label when it is not a single token after the prefix.
    """
    labels = [chr(ord("A") + j) for j in range(n)] if labels is None else list(labels)
    if len(labels) != n:
        raise ValueError(f"option_token_ids: {n} options but {len(labels)} labels {labels!r}.")
    base = tokenizer(prefix, add_special_tokens=False)["input_ids"]
    ids = []
    for label in labels:
        full = tokenizer(prefix + label, add_special_tokens=False)["input_ids"]
        if full[: len(base)] != base or len(full) != len(base) + 1:
            raise ValueError(
                f"Option label {label!r} is not a single token after {prefix!r} for this tokenizer "
                f"({tokenizer.convert_ids_to_tokens(full[len(base) - 1:])}); option scoring needs single-token labels. "
                f"Use a tokenizer whose capital letters are single tokens (e.g. Llama/SmolLM2/Qwen)."
            )
        ids.append(full[-1])
    return ids


class KVStore:
    """Context keys and values kept across steps, per session, least recently used evicted first.

    max_tokens bounds the kept context tokens over all sessions (memory: tokens x layers x 2 x kv heads x head dim x
    dtype bytes; SmolLM2-135M in fp32: 46 KB per token). 0 keeps nothing.

    Steps (:meth:`begin_step`, called once per simulator call) protect what they touched: an entry used in the current
    step is never evicted for another of the same step; a new context that finds only such entries is not kept. So a
    vector step whose users need more than the budget keeps reusing the contexts of the users that fit, instead of
    cycling through all of them and reusing none (plain LRU under cyclic access).
    """

    def __init__(self, max_tokens: int) -> None:
        if max_tokens < 0:
            raise ValueError(f"KVStore max_tokens must be >= 0 (0 keeps nothing), got {max_tokens}.")
        self.max_tokens = int(max_tokens)
        self._entries: OrderedDict[object, tuple[np.ndarray, list[tuple[torch.Tensor, torch.Tensor]]]] = OrderedDict()
        self._touched: dict[object, int] = {}  # session -> step of its last use
        self._step = 0
        self.tokens = 0  # kept now
        self.reused = 0  # context tokens not recomputed thanks to the store, since creation

    def begin_step(self) -> None:
        """Start a new step: what was used before it may now be evicted."""
        self._step += 1

    def __len__(self) -> int:
        return len(self._entries)

    def peek(self, session, ids: Sequence[int]) -> int:
        """How many leading tokens of ``ids`` are kept for ``session`` (nothing is touched)."""
        entry = self._entries.get(session)
        if entry is None:
            return 0
        kept = entry[0]
        n = min(len(kept), len(ids))
        differ = np.flatnonzero(kept[:n] != np.asarray(ids[:n], dtype=kept.dtype))
        return int(differ[0]) if len(differ) else n

    def holds(self, session, ids: Sequence[int]) -> bool:
        """Whether ``session``'s kept context is exactly ``ids``."""
        entry = self._entries.get(session)
        return entry is not None and len(entry[0]) == len(ids) and self.peek(session, ids) == len(ids)

    def lookup(self, session, ids: Sequence[int]) -> tuple[int, list | None]:
        """(number of leading tokens of ``ids`` whose KV is kept for ``session``, that KV) or (0, None)."""
        common = self.peek(session, ids)
        if common == 0:
            return 0, None
        kv = self._entries[session][1]
        self._entries.move_to_end(session)
        self._touched[session] = self._step
        return common, kv

    def put(self, session, ids: Sequence[int], kv: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        """Keep ``kv`` (per layer (1, heads, len(ids), dim) keys and values) as ``session``'s context ``ids``."""
        self.drop(session)
        if not self.max_tokens or len(ids) > self.max_tokens:
            return
        self._entries[session] = (np.asarray(ids, dtype=np.int64), kv)
        self._touched[session] = self._step
        self.tokens += len(ids)
        while self.tokens > self.max_tokens:
            oldest = next(iter(self._entries))
            self.drop(session if self._touched[oldest] == self._step else oldest)  # all in use: keep the new one out

    def drop(self, session) -> None:
        entry = self._entries.pop(session, None)
        self._touched.pop(session, None)
        if entry is not None:
            self.tokens -= len(entry[0])

    def clear(self) -> None:
        self._entries.clear()
        self._touched.clear()
        self.tokens = 0


@dataclass
class Tree:
    """KV cache and layout of a scored batch, kept for one round of follow-ups."""

    cache: object
    prefix_len: list[int]  # per row: system + real context tokens (cached, contiguous)
    width: int  # cached positions so far (system + context block + branch blocks)
    branch_start: int
    branch_width: int
    branch_len: torch.Tensor  # (B, m) real tokens per branch
    n_branches: int
    followed: bool = False


def _distributions(logits: torch.Tensor, options: Sequence[Sequence[Sequence[int]]]) -> tuple[list[list[np.ndarray]], np.ndarray]:
    logp = torch.log_softmax(logits.float(), dim=-1).cpu().numpy()  # (B, m, V)
    dists: list[list[np.ndarray]] = []
    mass = np.zeros(logp.shape[:2])
    for i, row in enumerate(options):
        out = []
        for b, opt in enumerate(row):
            p = np.exp(logp[i, b, list(opt)]) if len(opt) else np.zeros(0)
            mass[i, b] = p.sum()
            out.append(p / p.sum() if mass[i, b] > 0 else np.full(len(opt), 1.0 / max(len(opt), 1)))
        dists.append(out)
    return dists, mass


def _blocks(pieces: Sequence[Sequence[list[int]]], start_pos: Sequence[int], pad_id: int):
    """Left-aligned blocks: ids, position ids, index of each block's last real token, real lengths."""
    bsz, m = len(pieces), len(pieces[0])
    if any(len(row) != m for row in pieces):
        raise ValueError("Every row needs the same number of pieces.")
    w = max(1, max(len(x) for row in pieces for x in row))
    ids = torch.full((bsz, m * w), pad_id, dtype=torch.long)
    pos = torch.zeros((bsz, m * w), dtype=torch.long)
    keep = torch.zeros((bsz, m), dtype=torch.long)
    lens = torch.zeros((bsz, m), dtype=torch.long)
    for i, row in enumerate(pieces):
        for b, tokens in enumerate(row):
            n = len(tokens)
            lens[i, b] = n
            keep[i, b] = b * w + max(n - 1, 0)
            pos[i, b * w : (b + 1) * w] = start_pos[i] + torch.arange(w)  # pads continue the count; never attended
            if n:
                ids[i, b * w : b * w + n] = torch.tensor(tokens, dtype=torch.long)
    return ids, pos, keep, lens, w


class TreeScorer:
    """Distributions over option tokens for many branches per user, in one forward pass per stage."""

    def __init__(self, model, tokenizer, system_text: str, kv_store: KVStore | None = None) -> None:
        from simulators.llm.tree_attention import enable_tree_attention

        self.model = model
        self.kv_store = kv_store
        enable_tree_attention(model)
        self.tokenizer = tokenizer
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
        self.device = next(model.parameters()).device
        self.system_ids = tokenizer(system_text, add_special_tokens=False)["input_ids"]
        self.tokens_forwarded = 0  # model input positions actually run, pads included (FLOP accounting)
        with torch.inference_mode():
            out = self.model(input_ids=torch.tensor([self.system_ids], device=self.device), use_cache=True)
        self.tokens_forwarded += len(self.system_ids)
        self._system_kv = [(layer.keys, layer.values) for layer in out.past_key_values.layers]

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        return [self.tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]

    def _forward(self, ids, pos, cache, keep, layout):
        dummy = torch.ones((1, 1, 1, 1), dtype=torch.bool, device=self.device)  # 4D: HF builds no mask of its own
        with torch.inference_mode():
            out = self.model(
                input_ids=ids.to(self.device), position_ids=pos.to(self.device), attention_mask=dummy,
                past_key_values=cache, use_cache=True, logits_to_keep=keep.to(self.device), tree_layout=layout,
            )
        self.tokens_forwarded += ids.numel()
        return out.logits

    def score(
        self, contexts: Sequence[list[int]], branches: Sequence[Sequence[list[int]]],
        options: Sequence[Sequence[Sequence[int]]], sessions: Sequence[object] | None = None,
    ) -> tuple[list[list[np.ndarray]], np.ndarray, Tree]:
        """Score ``branches[i][b]`` (token ids) after ``contexts[i]``; every row has the same number m of branches.

        Two passes: the contexts on the system cache, then all branches at once. Returns per row and
        branch the distribution over ``options[i][b]``, the (B, m) raw option mass, and the
        :class:`Tree` for :meth:`follow_up`. ``sessions[i]`` (with a ``kv_store``) names row i's session: the
        context tokens it shares with that session's kept context are not recomputed, and its context is kept.
        """
        from transformers import DynamicCache

        from simulators.llm.tree_attention import TreeLayout

        bsz, m = len(contexts), len(branches[0])
        s = len(self.system_ids)
        store = self.kv_store if sessions is not None else None
        found = [store.lookup(key, ctx) for key, ctx in zip(sessions, contexts)] if store is not None else [(0, None)] * bsz
        reuse = [n for n, _ in found]
        kept = max(reuse)
        layers = []
        for layer, (k, v) in enumerate(self._system_kv):
            if not kept:
                layers.append((k.expand(bsz, -1, -1, -1), v.expand(bsz, -1, -1, -1)))
                continue
            pair = []
            for x, which in ((k, 0), (v, 1)):  # [system][kept context, padded to the longest kept]
                full = x.new_zeros((bsz, x.shape[1], s + kept, x.shape[3]))
                full[:, :, :s] = x
                for i, (n, kv) in enumerate(found):
                    if n:
                        full[i, :, s : s + n] = kv[layer][which][0, :, :n]
                pair.append(full)
            layers.append(tuple(pair))
        cache = DynamicCache(ddp_cache_data=layers)
        if store is not None:
            store.reused += sum(reuse)
        start = [s + n for n in reuse]
        ids, pos, _, new_len, wc = _blocks([[c[n:]] for c, n in zip(contexts, reuse)], start, self.pad_id)
        ctx_len = [n + int(x) for n, x in zip(reuse, new_len[:, 0])]
        if int(new_len.max()) or not kept:
            self._forward(ids, pos, cache, torch.zeros((bsz, 1), dtype=torch.long), TreeLayout(start, 1, wc, shared_len=s))
            if kept:
                self._repack(cache, s, reuse, kept, ctx_len)
        width = cache.layers[0].keys.shape[2] - s  # context block: each row's context first, pads after
        if store is not None:
            for i, key in enumerate(sessions):
                if reuse[i] == len(contexts[i]) and store.holds(key, contexts[i]):
                    continue  # kept already, exactly: nothing to copy
                store.put(key, contexts[i], [(layer.keys[i : i + 1, :, s : s + ctx_len[i]].clone(),
                                              layer.values[i : i + 1, :, s : s + ctx_len[i]].clone()) for layer in cache.layers])
        prefix = [s + n for n in ctx_len]
        ids, pos, keep, lens, wb = _blocks(branches, prefix, self.pad_id)
        logits = self._forward(ids, pos, cache, keep, TreeLayout(prefix, m, wb, shared_len=s))
        dists, mass = _distributions(logits, options)
        return dists, mass, Tree(cache, prefix, s + width + m * wb, s + width, wb, lens, m)

    @staticmethod
    def _repack(cache, s: int, reuse: list[int], kept: int, ctx_len: list[int]) -> None:
        """[system][kept, padded][new, padded] -> [system][kept + new, padded]: each row's context contiguous."""
        width = max(ctx_len)
        t = torch.arange(width)[None, :]
        r = torch.as_tensor(reuse)[:, None]
        src = torch.where(t < r, s + t, s + kept + t - r)
        src = torch.where(t < torch.as_tensor(ctx_len)[:, None], src, 0)  # pads: any key, never attended
        for layer in cache.layers:
            idx = src.to(layer.keys.device)[:, None, :, None].expand(-1, layer.keys.shape[1], -1, layer.keys.shape[3])
            layer.keys = torch.cat([layer.keys[:, :, :s], layer.keys.gather(2, idx)], 2)
            layer.values = torch.cat([layer.values[:, :, :s], layer.values.gather(2, idx)], 2)

    def follow_up(
        self, tree: Tree, follow: Sequence[Sequence[list[int]]], options: Sequence[Sequence[Sequence[int]]]
    ) -> tuple[list[list[np.ndarray]], np.ndarray]:
        """Append ``follow[i][b]`` after branch b of row i (empty list: nothing) and score its last token."""
        from simulators.llm.tree_attention import TreeLayout

        if tree.followed:
            raise RuntimeError("A Tree takes one round of follow-ups; score again for another round.")
        ids, pos, keep, _, wf = _blocks(follow, [0] * len(follow), self.pad_id)
        # a follow-up of branch b starts where branch b ended
        pos = pos + (torch.as_tensor(tree.prefix_len)[:, None] + tree.branch_len).repeat_interleave(wf, 1)
        layout = TreeLayout(
            tree.prefix_len, tree.n_branches, wf, tree.branch_start, tree.branch_width, tree.branch_len, len(self.system_ids)
        )
        logits = self._forward(ids, pos, tree.cache, keep, layout)
        tree.followed = True
        return _distributions(logits, options)

    def score_full(self, texts: Sequence[str], options: Sequence[Sequence[int]]) -> tuple[list[np.ndarray], np.ndarray]:
        """Reference path: each whole sequence [system + text] run alone, no cache, no padding, no tree."""
        dists, mass = [], []
        for text, opt in zip(texts, options):
            ids = torch.tensor([self.system_ids + self.tokenizer(text, add_special_tokens=False)["input_ids"]])
            with torch.inference_mode():
                logits = self.model(input_ids=ids.to(self.device), logits_to_keep=1).logits[0, -1].float()
            p = torch.softmax(logits, -1).cpu().numpy()[list(opt)]
            mass.append(p.sum())
            dists.append(p / p.sum())
        return dists, np.array(mass)
