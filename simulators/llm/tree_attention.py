"""Mask-free attention for tree-shaped batches (cascade attention), as a transformers attention backend.

The scorer's sequences share structure: every query sees a *prefix* (system prompt + its row's
context), possibly the *branch* it follows up on, and earlier tokens of its *own block*. A dense
4D mask over all of it makes SDPA spend most of its time on masked-out pairs. Instead each part is
attended separately without a mask (the CPU flash kernel, which also returns the log-sum-exp) and
the parts are merged exactly: ``out = sum_p out_p * exp(lse_p - lse)`` with ``lse = logsumexp_p lse_p``.

Layout contract (built by :class:`~simulators.llm.scoring.TreeScorer`):

* the new tokens of a pass form ``n_blocks`` blocks of ``block`` positions per row; real tokens
  come first in a block and pads after, so causal attention inside a block never sees a pad;
* row i's prefix is the first ``prefix_len[i]`` cached keys (contiguous, no pads), of which the first
  ``shared_len`` (the system prompt) are the same for every row: all queries of all rows attend to
  them in one call; the rest of the prefix (the row's context) in one call with its pads masked;
* a follow-up pass also sees the cached branch it continues: block b of the branch region that
  starts at ``branch_start`` with ``branch_width`` positions, of which ``branch_len[i, b]`` are real.

Calls without a ``tree_layout`` keyword (generation, training, the reference path) run standard SDPA.

Kernels: on CPU the parts run PyTorch's CPU flash kernel; on other devices (CUDA) they run as plain matmuls with the
log-sum-exp in fp32 (exact, any backend; ``KERNEL = "math"`` forces that path on CPU too, which the tests compare).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["KERNEL", "TREE_ATTENTION", "TreeLayout", "enable_tree_attention"]

TREE_ATTENTION = "recsim_tree"
KERNEL = "auto"  # "auto": the CPU flash kernel on CPU, matmuls elsewhere; "math": matmuls everywhere


@dataclass
class TreeLayout:
    prefix_len: list[int]
    n_blocks: int
    block: int
    branch_start: int | None = None
    branch_width: int | None = None
    branch_len: torch.Tensor | None = None  # (B, n_blocks)
    shared_len: int = 0


def _flash(q, k, v, causal: bool, scale: float, mask=None):
    """Attention of ``q`` over ``k``/``v`` (additive ``mask``; ``causal`` for a block over its own keys) and its
    log-sum-exp per query, which :func:`_merge` needs."""
    if q.device.type == "cpu" and KERNEL == "auto":
        out, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
            q, k, v, 0.0, causal, attn_mask=mask, scale=scale
        )[:2]
        return out, lse
    if k.shape[1] != q.shape[1]:  # grouped-query attention: each key head serves several query heads
        k, v = (x.repeat_interleave(q.shape[1] // x.shape[1], 1) for x in (k, v))
    scores = torch.matmul(q.float(), k.float().transpose(-1, -2)) * scale
    if mask is not None:
        scores = scores + mask.float()
    if causal:
        scores = scores.masked_fill(torch.ones(scores.shape[-2:], dtype=torch.bool, device=q.device).triu(1), float("-inf"))
    lse = torch.logsumexp(scores, -1)
    out = torch.matmul(torch.exp(scores - lse[..., None]), v.float())
    return out.to(q.dtype), lse


def _merge(parts, dtype):
    """Exact combination of attention over disjoint key sets from their outputs and log-sum-exps."""
    weights = torch.softmax(torch.stack([p[1] for p in parts]), dim=0).to(dtype)  # (P, B, H, Q)
    out = parts[0][0] * weights[0][..., None]
    for (o, _), w in zip(parts[1:], weights[1:]):
        out.addcmul_(o, w[..., None])
    return out


def tree_attention_forward(module, query, key, value, attention_mask, scaling=None, dropout=0.0, tree_layout=None, **kwargs):
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if tree_layout is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, scaling=scaling, dropout=dropout, **kwargs)
    lay: TreeLayout = tree_layout
    bsz, heads, q_len, dim = query.shape
    scale = scaling if scaling is not None else dim**-0.5
    m, w = lay.n_blocks, lay.block
    old = key.shape[2] - q_len

    # 1a. shared prefix (system prompt): identical keys for all rows -> every query in one call
    parts = []
    shared = lay.shared_len
    if shared:
        q_all = query.transpose(0, 1).reshape(1, heads, bsz * q_len, dim)
        o, l = _flash(q_all, key[:1, :, :shared], value[:1, :, :shared], False, scale)
        parts.append((o.reshape(heads, bsz, q_len, dim).transpose(0, 1), l.reshape(heads, bsz, q_len).transpose(0, 1)))
    # 1b. the rest of each row's prefix (its context), pads beyond prefix_len masked
    longest = max(lay.prefix_len)
    if longest > shared:
        span = longest - shared
        dev = query.device
        pad = torch.arange(shared, longest, device=dev)[None, :] >= torch.as_tensor(lay.prefix_len, device=dev)[:, None]  # (B, span)
        empty = pad.all(1)  # a row with nothing beyond the shared prefix: one harmless key, weight -> 0 below
        mask = None
        if pad.any():
            mask = torch.zeros((bsz, 1, 1, span), dtype=query.dtype, device=dev).masked_fill(pad[:, None, None, :], float("-inf"))
            mask[empty, :, :, 0] = 0.0
            mask = mask.expand(bsz, 1, q_len, span)
        o, l = _flash(query, key[:, :, shared:longest], value[:, :, shared:longest], False, scale, mask)
        parts.append((o, l.masked_fill(empty[:, None, None], float("-inf"))))

    def blocks(x, start, width):  # (B, h, n*width, d) region -> (B*n, h, width, d)
        region = x[:, :, start : start + m * width]
        return region.reshape(bsz, x.shape[1], m, width, dim).transpose(1, 2).reshape(bsz * m, x.shape[1], width, dim)

    def unblock(o, l):  # (B*n, h, width, d) -> (B, h, n*width, d)
        o = o.reshape(bsz, m, heads, w, dim).transpose(1, 2).reshape(bsz, heads, m * w, dim)
        l = l.reshape(bsz, m, heads, w).transpose(1, 2).reshape(bsz, heads, m * w)
        return o, l

    qb = blocks(query, 0, w)
    # 2. the cached branch a follow-up continues (its pads masked by length)
    if lay.branch_start is not None:
        t = lay.branch_width
        kb, vb = blocks(key, lay.branch_start, t), blocks(value, lay.branch_start, t)
        real = torch.arange(t, device=query.device)[None, :] < lay.branch_len.to(query.device).reshape(-1, 1)  # (B*n, t)
        mask = torch.zeros((bsz * m, 1, 1, t), dtype=query.dtype, device=query.device).masked_fill(~real[:, None, None, :], float("-inf"))
        # a follow-up block of an empty branch sees no branch keys: give it one harmless key (weight -> 0 below)
        mask[~real.any(1), :, :, 0] = 0.0
        o, l = _flash(qb, kb, vb, False, scale, mask.expand(bsz * m, 1, w, t))
        o, l = unblock(o, l)
        l = l.masked_fill(~real.any(1).reshape(bsz, m).repeat_interleave(w, 1)[:, None, :], float("-inf"))
        parts.append((o, l))
    # 3. own block, causal
    o, l = _flash(qb, blocks(key, old, w), blocks(value, old, w), True, scale)
    parts.append(unblock(o, l))
    out = _merge(parts, query.dtype)
    return out.transpose(1, 2).contiguous(), None


def enable_tree_attention(model) -> None:
    """Register the backend (once) and switch ``model`` to it; standard SDPA still serves other calls."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(TREE_ATTENTION, tree_attention_forward)
    AttentionMaskInterface.register(TREE_ATTENTION, sdpa_mask)
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    base.set_attn_implementation(TREE_ATTENTION)
