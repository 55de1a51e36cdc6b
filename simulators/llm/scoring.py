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

Only the positions that end a branch get logits (``logits_to_keep`` index tensor); a distribution
is the softmax restricted to the option letters shown, renormalised. The mass that fell on those
letters before renormalising is returned as a format-health signal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

__all__ = ["Tree", "TreeScorer", "option_token_ids"]


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

    def __init__(self, model, tokenizer, system_text: str) -> None:
        from simulators.llm.tree_attention import enable_tree_attention

        self.model = model
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
        options: Sequence[Sequence[Sequence[int]]],
    ) -> tuple[list[list[np.ndarray]], np.ndarray, Tree]:
        """Score ``branches[i][b]`` (token ids) after ``contexts[i]``; every row has the same number m of branches.

        Two passes: the contexts on the system cache, then all branches at once. Returns per row and
        branch the distribution over ``options[i][b]``, the (B, m) raw option mass, and the
        :class:`Tree` for :meth:`follow_up`.
        """
        from transformers import DynamicCache

        from simulators.llm.tree_attention import TreeLayout

        bsz, m = len(contexts), len(branches[0])
        s = len(self.system_ids)
        cache = DynamicCache(ddp_cache_data=[(k.expand(bsz, -1, -1, -1), v.expand(bsz, -1, -1, -1)) for k, v in self._system_kv])
        ids, pos, _, ctx_len, wc = _blocks([[c] for c in contexts], [s] * bsz, self.pad_id)
        self._forward(ids, pos, cache, torch.zeros((bsz, 1), dtype=torch.long), TreeLayout([s] * bsz, 1, wc, shared_len=s))
        prefix = [s + int(n) for n in ctx_len[:, 0]]
        ids, pos, keep, lens, wb = _blocks(branches, prefix, self.pad_id)
        logits = self._forward(ids, pos, cache, keep, TreeLayout(prefix, m, wb, shared_len=s))
        dists, mass = _distributions(logits, options)
        return dists, mass, Tree(cache, prefix, s + wc + m * wb, s + wc, wb, lens, m)

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
