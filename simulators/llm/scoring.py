"""Option scoring without generation: one prefill pass gives a distribution over option letters.

Layout of every scored sequence: ``[system][context][question]``.

* The system prompt's KV cache is computed once per scorer and reused by every batch.
* A batch of contexts (one per user, right-padded) is prefilled once on top of it; its cache is
  then reused by every question asked about those users (page choice, per-item judge, follow-ups):
  each question batch (left-padded) runs on the cache, and the cache is cropped back afterwards.
* Only the last position's logits are computed (``logits_to_keep=1``); the distribution is the
  softmax restricted to the option letters shown, renormalised. The probability mass that fell on
  those letters before renormalising is returned as a format-health signal.

Padding sits between the pieces; it is masked out and position ids skip it, so a padded, cached
row gives the same distribution as the unpadded sequence run alone (tested).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

__all__ = ["Context", "PrefixScorer", "option_token_ids"]


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
class Context:
    """Prefilled [system][context] rows: their KV cache, attention mask and real lengths."""

    cache: object
    mask: torch.Tensor  # (B, S + U)
    lengths: torch.Tensor  # (B,) real tokens per row (system + context)

    def select(self, rows: Sequence[int]) -> "Context":
        from transformers import DynamicCache

        idx = torch.as_tensor(list(rows), dtype=torch.long)
        data = [(layer.keys.index_select(0, idx), layer.values.index_select(0, idx)) for layer in self.cache.layers]
        return Context(DynamicCache(ddp_cache_data=data), self.mask.index_select(0, idx), self.lengths.index_select(0, idx))


class PrefixScorer:
    """Distributions over option tokens with KV reuse of the system prompt and user contexts."""

    def __init__(self, model, tokenizer, system_text: str) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
        self.device = next(model.parameters()).device
        self.system_ids = tokenizer(system_text, add_special_tokens=False)["input_ids"]
        self.tokens_forwarded = 0  # model input tokens actually run (for FLOP accounting)
        with torch.inference_mode():
            out = self.model(input_ids=torch.tensor([self.system_ids], device=self.device), use_cache=True)
        self.tokens_forwarded += len(self.system_ids)
        self._system_kv = [(layer.keys, layer.values) for layer in out.past_key_values.layers]

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        return [self.tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]

    def prefill(self, context_ids: Sequence[list[int]]) -> Context:
        """Run the contexts (right-padded) on a copy of the system cache."""
        from transformers import DynamicCache

        b, s = len(context_ids), len(self.system_ids)
        u = max(len(c) for c in context_ids)
        ids = torch.full((b, u), self.pad_id, dtype=torch.long)
        cmask = torch.zeros((b, u), dtype=torch.long)
        for i, c in enumerate(context_ids):
            ids[i, : len(c)] = torch.tensor(c)
            cmask[i, : len(c)] = 1
        cache = DynamicCache(ddp_cache_data=[(k.expand(b, -1, -1, -1), v.expand(b, -1, -1, -1)) for k, v in self._system_kv])
        mask = torch.cat([torch.ones((b, s), dtype=torch.long), cmask], 1)
        pos = (s + torch.arange(u)).expand(b, u)
        with torch.inference_mode():
            self.model(
                input_ids=ids.to(self.device), attention_mask=mask.to(self.device), position_ids=pos.to(self.device),
                past_key_values=cache, use_cache=True, logits_to_keep=1,
            )
        self.tokens_forwarded += b * u
        return Context(cache, mask, s + cmask.sum(1))

    def score(
        self, ctx: Context, question_ids: Sequence[list[int]], options: Sequence[Sequence[int]]
    ) -> tuple[list[np.ndarray], np.ndarray]:
        """Per row: distribution over ``options[i]`` (token ids) after its question; and the raw mass."""
        b = len(question_ids)
        t = max(len(q) for q in question_ids)
        ids = torch.full((b, t), self.pad_id, dtype=torch.long)
        qmask = torch.zeros((b, t), dtype=torch.long)
        for i, q in enumerate(question_ids):
            ids[i, t - len(q) :] = torch.tensor(q)
            qmask[i, t - len(q) :] = 1
        mask = torch.cat([ctx.mask, qmask], 1)
        pos = ctx.lengths[:, None] + (qmask.cumsum(1) - 1).clamp(min=0)
        with torch.inference_mode():
            out = self.model(
                input_ids=ids.to(self.device), attention_mask=mask.to(self.device), position_ids=pos.to(self.device),
                past_key_values=ctx.cache, use_cache=True, logits_to_keep=1,
            )
        ctx.cache.crop(-t)
        self.tokens_forwarded += b * t
        logp = torch.log_softmax(out.logits[:, -1, :].float(), dim=-1).cpu().numpy()
        dists, mass = [], np.empty(b)
        for i, opt in enumerate(options):
            p = np.exp(logp[i, list(opt)])
            mass[i] = p.sum()
            dists.append(p / p.sum() if mass[i] > 0 else np.full(len(opt), 1.0 / len(opt)))
        return dists, mass

    def score_full(self, texts: Sequence[str], options: Sequence[Sequence[int]]) -> tuple[list[np.ndarray], np.ndarray]:
        """Reference path: each whole sequence [system + text] run alone, no cache, no padding."""
        dists, mass = [], []
        for text, opt in zip(texts, options):
            ids = torch.tensor([self.system_ids + self.tokenizer(text, add_special_tokens=False)["input_ids"]])
            with torch.inference_mode():
                logits = self.model(input_ids=ids.to(self.device), logits_to_keep=1).logits[0, -1].float()
            p = torch.softmax(logits, -1).cpu().numpy()[list(opt)]
            mass.append(p.sum())
            dists.append(p / p.sum())
        return dists, np.array(mass)
