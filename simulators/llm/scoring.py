"""Option scoring without generation, with shared-prefix reuse by tree attention.

Every scored question is a *branch* that follows a user's *context*, which follows the *system*
prompt. For a batch of users the layout of one row is::

    [system (cached once)] [context_i] [branch_i1] [branch_i2] ... [branch_im]

The contexts of a batch run in one pass on the system prompt's cache, then ONE pass scores all
branches of all rows: a 4D attention mask lets each branch see the system prompt, its row's
context and itself (causally) but not the other branches, and position ids restart after the
context for every branch. So the system prompt is computed once per simulator, each context once
per step, and each item's question costs only its own tokens. A further pass
(:meth:`TreeScorer.follow_up`) appends one short follow-up per branch (e.g. the reason after a
skip) on top of the same KV cache, with the same kind of mask.

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
    owner: torch.Tensor  # (B, L) per cached position: -1 pad, 0 system, 1 context, 2 + b branch b (and its follow-ups)
    branch_end: torch.Tensor  # (B, m) next position id of each branch
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

        Two passes: the contexts (causal) on the system cache, then all branches at once (tree mask).
        Returns per row and branch the distribution over ``options[i][b]``, the (B, m) raw option mass,
        and the :class:`Tree` for :meth:`follow_up`.
        """
        from transformers import DynamicCache

        bsz, m = len(contexts), len(branches[0])
        if any(len(b) != m for b in branches):
            raise ValueError("Every row needs the same number of branches.")
        s = len(self.system_ids)
        cache = DynamicCache(ddp_cache_data=[(k.expand(bsz, -1, -1, -1), v.expand(bsz, -1, -1, -1)) for k, v in self._system_kv])
        tree = Tree(cache, torch.zeros((bsz, s), dtype=torch.long), torch.full((bsz, 1), s, dtype=torch.long), 1)
        self._extend(tree, [[c] for c in contexts], owner_base=1, shared_owner=True)
        tree.branch_end = tree.branch_end.expand(bsz, m).clone()
        tree.n_branches = m
        logits = self._extend(tree, branches, owner_base=2)
        dists, mass = _distributions(logits, options)
        return dists, mass, tree

    def follow_up(
        self, tree: Tree, follow: Sequence[Sequence[list[int]]], options: Sequence[Sequence[Sequence[int]]]
    ) -> tuple[list[list[np.ndarray]], np.ndarray]:
        """Append ``follow[i][b]`` after branch b of row i (empty list: nothing) and score its last token."""
        return _distributions(self._extend(tree, follow, owner_base=2), options)

    def _extend(self, tree: Tree, pieces: Sequence[Sequence[list[int]]], owner_base: int, shared_owner: bool = False) -> torch.Tensor:
        """Run ``pieces[i][b]`` (right-aligned in blocks) after what piece b of row i continues; logits at block ends.

        A piece continues branch b (owner id ``owner_base + b``) from position ``tree.branch_end[i, b]``;
        it sees the system prompt, the context (owner 1) and earlier tokens of its own branch.
        With ``shared_owner`` the piece is the context itself (owner 1, one piece per row).
        """
        bsz, m = len(pieces), len(pieces[0])
        w = max(1, max(max((len(x) for x in row), default=0) for row in pieces))
        ids = torch.full((bsz, m * w), self.pad_id, dtype=torch.long)
        pos = torch.zeros((bsz, m * w), dtype=torch.long)
        owner = torch.full((bsz, m * w), -1, dtype=torch.long)
        keep = torch.zeros((bsz, m), dtype=torch.long)
        for i, row in enumerate(pieces):
            for b, tokens in enumerate(row):
                end = (b + 1) * w
                keep[i, b] = end - 1
                if tokens:
                    n = len(tokens)
                    ids[i, end - n : end] = torch.tensor(tokens, dtype=torch.long)
                    pos[i, end - n : end] = tree.branch_end[i, b] + torch.arange(n)
                    owner[i, end - n : end] = 1 if shared_owner else owner_base + b
                    tree.branch_end[i, b] += n
        k_owner = torch.cat([tree.owner, owner], 1)
        q = owner[:, :, None]
        k = k_owner[:, None, :]
        offset = tree.owner.shape[1]
        causal = torch.arange(k_owner.shape[1])[None, None, :] <= (offset + torch.arange(m * w))[None, :, None]
        sees = (k == 0) | (((k == 1) | (k == q)) & (q >= 1) & causal)
        sees &= k >= 0  # pad queries (owner -1) see the system prompt only: no fully masked rows
        logits = self._forward(ids, pos, sees[:, None], tree.cache, keep)
        tree.owner = k_owner
        return logits

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
