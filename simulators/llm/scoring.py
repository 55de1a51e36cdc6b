"""Option scoring without generation, with shared-prefix reuse by tree attention.

Every scored question is a *branch* that follows a user's *context*, which follows the *system*
prompt. For a batch of users the layout of one row is::

    [system (cached once)] [context_i] [branch_i1] [branch_i2] ... [branch_im]

and ONE forward pass scores all branches of all rows: a 4D attention mask lets each branch see
the system prompt, its row's context and itself (causally) but not the other branches, and
position ids restart after the context for every branch. So the system prompt is computed once
per simulator, each context once per step, and each item's question costs only its own tokens.
A second pass (:meth:`TreeScorer.follow_up`) appends one short follow-up per branch (e.g. the
reason after a skip) on top of the first pass's KV cache, again with a tree mask.

Only the positions that end a branch get logits (``logits_to_keep`` index tensor); a distribution
is the softmax restricted to the option letters shown, renormalised. The mass that fell on those
letters before renormalising is returned as a format-health signal. Pad positions attend to the
system prompt only (never to nothing, which would produce NaNs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

__all__ = ["Tree", "TreeScorer", "option_token_ids"]


def option_token_ids(tokenizer, n: int, prefix: str = "Behavior: [") -> list[int]:
    """Token ids of the letters A.. for ``n`` options as they follow ``prefix``.

    Raises ValueError naming the letter when a label is not a single token after the prefix.
    """
    base = tokenizer(prefix, add_special_tokens=False)["input_ids"]
    ids = []
    for j in range(n):
        letter = chr(ord("A") + j)
        full = tokenizer(prefix + letter, add_special_tokens=False)["input_ids"]
        if full[: len(base)] != base or len(full) != len(base) + 1:
            raise ValueError(
                f"Option label {letter!r} is not a single token after {prefix!r} for this tokenizer "
                f"({tokenizer.convert_ids_to_tokens(full[len(base) - 1:])}); option scoring needs single-token labels. "
                f"Use a tokenizer whose capital letters are single tokens (e.g. Llama/SmolLM2/Qwen)."
            )
        ids.append(full[-1])
    return ids


@dataclass
class Tree:
    """KV cache and layout of a scored batch, kept for follow-ups."""

    cache: object
    owner: torch.Tensor  # (B, L) -1 pad, 0 system, 1 context, 2 + b branch b (2 + m + b: follow-up b)
    real: torch.Tensor  # (B, L) bool, real (non-pad) positions
    branch_end: torch.Tensor  # (B, m) next position id after each branch
    n_branches: int


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


class TreeScorer:
    """Distributions over option tokens for many branches per user, in one forward pass."""

    def __init__(self, model, tokenizer, system_text: str) -> None:
        self.model = model
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

    def _forward(self, ids, pos, mask4d, cache, keep):
        with torch.inference_mode():
            out = self.model(
                input_ids=ids.to(self.device), position_ids=pos.to(self.device), attention_mask=mask4d.to(self.device),
                past_key_values=cache, use_cache=True, logits_to_keep=keep.to(self.device),
            )
        self.tokens_forwarded += ids.numel()
        return out.logits

    def score(
        self, contexts: Sequence[list[int]], branches: Sequence[Sequence[list[int]]],
        options: Sequence[Sequence[Sequence[int]]],
    ) -> tuple[list[list[np.ndarray]], np.ndarray, Tree]:
        """Score ``branches[i][b]`` (token ids) after ``contexts[i]``; every row has the same number m of branches.

        Returns per row and branch the distribution over ``options[i][b]``, the (B, m) raw option mass,
        and the :class:`Tree` for :meth:`follow_up`.
        """
        from transformers import DynamicCache

        bsz, m = len(contexts), len(branches[0])
        if any(len(b) != m for b in branches):
            raise ValueError("Every row needs the same number of branches.")
        s = len(self.system_ids)
        c = max(len(x) for x in contexts)
        t = max(max(len(x) for x in row) for row in branches)
        length = c + m * t
        ids = torch.full((bsz, length), self.pad_id, dtype=torch.long)
        pos = torch.zeros((bsz, length), dtype=torch.long)
        owner = torch.full((bsz, length), -1, dtype=torch.long)
        branch_end = torch.zeros((bsz, m), dtype=torch.long)
        keep = torch.zeros((bsz, m), dtype=torch.long)
        for i, (ctx, row) in enumerate(zip(contexts, branches)):
            ids[i, : len(ctx)] = torch.tensor(ctx, dtype=torch.long)
            pos[i, : len(ctx)] = s + torch.arange(len(ctx))
            owner[i, : len(ctx)] = 1
            for b, br in enumerate(row):
                end = c + (b + 1) * t  # branches are right-aligned in their block: the last token ends it
                ids[i, end - len(br) : end] = torch.tensor(br, dtype=torch.long)
                pos[i, end - len(br) : end] = s + len(ctx) + torch.arange(len(br))
                owner[i, end - len(br) : end] = 2 + b
                branch_end[i, b] = s + len(ctx) + len(br)
                keep[i, b] = end - 1
        full_owner = torch.cat([torch.zeros((bsz, s), dtype=torch.long), owner], 1)
        mask = self._tree_mask(owner, full_owner, s)
        cache = DynamicCache(ddp_cache_data=[(k.expand(bsz, -1, -1, -1), v.expand(bsz, -1, -1, -1)) for k, v in self._system_kv])
        logits = self._forward(ids, pos, mask, cache, keep)
        dists, mass = _distributions(logits, options)
        return dists, mass, Tree(cache, full_owner, full_owner >= 0, branch_end, m)

    @staticmethod
    def _tree_mask(q_owner: torch.Tensor, k_owner: torch.Tensor, offset: int) -> torch.Tensor:
        """Bool (B, 1, Q, K): system always; context causally; a branch sees context + itself causally."""
        q = q_owner[:, :, None]
        k = k_owner[:, None, :]
        q_idx = offset + torch.arange(q_owner.shape[1])[None, :, None]
        k_idx = torch.arange(k_owner.shape[1])[None, None, :]
        causal = k_idx <= q_idx
        sees = (k == 0) | (((k == 1) | (k == q)) & (q >= 1) & causal)
        sees &= k >= 0
        return sees[:, None]  # pad queries (owner -1) see the system prompt only: no fully masked rows

    def follow_up(
        self, tree: Tree, follow: Sequence[Sequence[list[int]]], options: Sequence[Sequence[Sequence[int]]]
    ) -> tuple[list[list[np.ndarray]], np.ndarray]:
        """Append ``follow[i][b]`` after branch b of row i (empty list: nothing) and score its last token."""
        bsz, m = len(follow), tree.n_branches
        f = max(1, max(max((len(x) for x in row), default=0) for row in follow))
        ids = torch.full((bsz, m * f), self.pad_id, dtype=torch.long)
        pos = torch.zeros((bsz, m * f), dtype=torch.long)
        owner = torch.full((bsz, m * f), -1, dtype=torch.long)
        keep = torch.zeros((bsz, m), dtype=torch.long)
        for i, row in enumerate(follow):
            for b, tokens in enumerate(row):
                end = (b + 1) * f
                keep[i, b] = end - 1
                if tokens:
                    ids[i, end - len(tokens) : end] = torch.tensor(tokens, dtype=torch.long)
                    pos[i, end - len(tokens) : end] = tree.branch_end[i, b] + torch.arange(len(tokens))
                    owner[i, end - len(tokens) : end] = 2 + b
        # keys: old layout (follow-up b sees branch b's owner id 2 + b) + the new follow-up tokens
        k_owner = torch.cat([tree.owner, owner], 1)
        q = owner[:, :, None]
        k = k_owner[:, None, :]
        offset = tree.owner.shape[1]
        causal = torch.arange(k_owner.shape[1])[None, None, :] <= (offset + torch.arange(m * f))[None, :, None]
        sees = (k == 0) | (((k == 1) | (k == q)) & (q >= 1) & causal)
        sees &= k >= 0
        logits = self._forward(ids, pos, sees[:, None], tree.cache, keep)
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
