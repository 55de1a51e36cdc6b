"""Compiled (numba) loops of the per-step work: taste profiles, slate repeats, memory updates, reward terms.

A step of one session touches a few dozen numbers; written as numpy expressions it costs ~150 small array
operations, and their call overhead, not arithmetic, was the env's speed limit (``benchmarks/results/throughput.md``).
Each kernel here is the single implementation of its idea, used the same way for one row and for thousands (fitting).
Compiled on first use and cached next to this module (``cache=True``; numba falls back to its user cache directory
where that is read-only).
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = [
    "history_feedback", "leave_draws", "leave_hazard", "leave_hazards", "profile_sums", "recency", "remember", "reset_memory",
    "reward_terms_kernel", "slate_repeats",
]


@njit(cache=True, nogil=True)
def recency(decay, H):
    """(H,) weights ``decay ** age`` of a right-aligned memory of H items (the most recent has age 0)."""
    out = np.empty(H)
    w = 1.0
    for h in range(H - 1, -1, -1):
        out[h] = w
        w *= decay
    return out


@njit(cache=True, nogil=True)
def history_feedback(hist, skipped, ratio, max_ratio):
    """(N, H, 3) float32 per memory item: present, fast-skipped, watch ratio clipped to [0, max_ratio] (0 where
    unknown); zeros on padding."""
    n, H = hist.shape
    out = np.zeros((n, H, 3), np.float32)
    for i in range(n):
        for h in range(H):
            if hist[i, h] < 0:
                continue
            out[i, h, 0] = 1.0
            out[i, h, 1] = 1.0 if skipped[i, h] else 0.0
            r = ratio[i, h]
            out[i, h, 2] = 0.0 if np.isnan(r) else min(max(r, 0.0), max_ratio)
    return out


@njit(cache=True, nogil=True)
def profile_sums(hist, skipped, ratio, decay, index, value, d):
    """Unit-norm recency-weighted text profiles of watched (0) and skipped (1) memory items, (2, N, d), and the
    memory's mean known watch ratio (N,; NaN where none). Memory item h of H has weight ``decay ** (H - 1 - h)``;
    ``hist`` -1 is padding; text rows are sparse (``index``/``value``, value 0 pads)."""
    n, H = hist.shape
    out = np.zeros((2, n, d))
    mean = np.full(n, np.nan)
    P = index.shape[1]
    weights = recency(decay, H)
    for i in range(n):
        total, count = 0.0, 0
        for h in range(H):
            item = hist[i, h]
            if item < 0:
                continue
            w = weights[h]
            k = 1 if skipped[i, h] else 0
            for p in range(P):
                out[k, i, index[item, p]] += w * value[item, p]
            r = ratio[i, h]
            if not np.isnan(r):
                total += r
                count += 1
        if count:
            mean[i] = total / count
        for k in range(2):
            s = 0.0
            for j in range(d):
                s += out[k, i, j] * out[k, i, j]
            if s > 0:
                s = np.sqrt(s)
                for j in range(d):
                    out[k, i, j] /= s
    return out, mean


@njit(cache=True, nogil=True)
def slate_repeats(consumed, rows, items):
    """(N, K) True where the item was consumed by the row's user or appears earlier in the same slate."""
    n, K = items.shape
    out = np.zeros((n, K), np.bool_)
    for i in range(n):
        for k in range(K):
            item = items[i, k]
            rep = consumed[rows[i], item]
            for j in range(k):
                if items[i, j] == item:
                    rep = True
            out[i, k] = rep
    return out


@njit(cache=True, nogil=True)
def reward_terms_kernel(played, clicked, skipped, watch, repeated, like_at):
    """(N, 5) click, watch_ratio, skip, repeat, like counts (``recsim_env.rewards.REWARD_TERMS``)."""
    n, K = played.shape
    out = np.zeros((n, 5))
    for i in range(n):
        for k in range(K):
            out[i, 0] += clicked[i, k]
            out[i, 3] += repeated[i, k]
            if not played[i, k]:
                continue
            w = watch[i, k]
            if np.isnan(w):
                w = 0.0
            out[i, 1] += w
            if skipped[i, k]:
                out[i, 2] += 1
            elif w >= like_at:
                out[i, 4] += 1
    return out


@njit(cache=True, nogil=True)
def remember(rows, items, taken, skipped, watch, hist, hist_ratio, hist_skipped, hist_time, hist_count, consumed):
    """Append each row's taken items (``taken`` (N, K): feed, the played ones; page, the clicked one), in slate order,
    to its right-aligned memory of H items (the oldest drop out) and mark them consumed."""
    H = hist.shape[1]
    for i in range(len(rows)):
        r = rows[i]
        new = 0
        for k in range(items.shape[1]):
            new += taken[i, k]
        if new == 0:
            continue
        keep = H - new
        for h in range(max(keep, 0)):
            hist[r, h] = hist[r, h + new]
            hist_ratio[r, h] = hist_ratio[r, h + new]
            hist_skipped[r, h] = hist_skipped[r, h + new]
            hist_time[r, h] = hist_time[r, h + new]
        j = 0  # the j-th taken item goes to memory slot keep + j (if it is among the last H)
        for k in range(items.shape[1]):
            if not taken[i, k]:
                continue
            consumed[r, items[i, k]] = True
            h = keep + j
            j += 1
            if h < 0:
                continue
            hist[r, h], hist_ratio[r, h], hist_skipped[r, h], hist_time[r, h] = items[i, k], watch[i, k], skipped[i, k], np.nan
        hist_count[r] += new


@njit(cache=True, nogil=True)
def leave_hazard(w, position, disliked, liked, tenure, min_hazard):
    """P(leaving right after one interaction): ``max(min_hazard, sigmoid(w . x))``, x = 1, log(1 + position),
    disliked, liked, log(1 + tenure), position == 0 (``recsim_env.sessions.FEATURES``)."""
    z = (w[0] + w[1] * np.log1p(position) + w[2] * disliked + w[3] * liked + w[4] * np.log1p(tenure)
         + w[5] * (position == 0))
    return max(min_hazard, 1.0 / (1.0 + np.exp(-z)))


@njit(cache=True, nogil=True)
def leave_hazards(w, position, disliked, liked, tenure, min_hazard):
    """:func:`leave_hazard` of 1-d arrays of interactions."""
    out = np.empty(len(position))
    for i in range(len(position)):
        out[i] = leave_hazard(w, position[i], disliked[i], liked[i], tenure[i], min_hazard)
    return out


@njit(cache=True, nogil=True)
def leave_draws(u, feed, played, clicked, skipped, watch, rating, position, tenure, w, min_hazard, like_at):
    """Who leaves after this step (N,), given one uniform per slot ``u``. Feed: the user meets the played items in
    order and leaves after the first whose draw is below its hazard; the items after it were not seen: ``played``,
    ``clicked`` and ``skipped`` are cleared and ``watch`` / ``rating`` set NaN there, in place. Page: one interaction,
    the clicked item, or a disliked one when nothing was clicked. ``position`` / ``tenure``: the row's interactions so
    far in the session / ever, before this step (``position`` is advanced in place). Disliked = fast-skipped; liked =
    watch ratio >= ``like_at``."""
    n, K = played.shape
    left = np.zeros(n, np.bool_)
    for i in range(n):
        if feed:
            j = 0
            for k in range(K):
                if left[i]:
                    played[i, k] = clicked[i, k] = skipped[i, k] = False
                    watch[i, k] = rating[i, k] = np.nan
                    continue
                if not played[i, k]:
                    continue
                liked = not skipped[i, k] and watch[i, k] >= like_at
                h = leave_hazard(w, position[i] + k, skipped[i, k], liked, tenure[i] + k, min_hazard)
                j += 1
                if u[i, k] < h:
                    left[i] = True
            position[i] += j
        else:
            c = -1
            for k in range(K):
                if clicked[i, k]:
                    c = k
                    break
            disliked = c < 0 or skipped[i, c]
            liked = not disliked and watch[i, c] >= like_at
            left[i] = u[i, 0] < leave_hazard(w, position[i], disliked, liked, tenure[i], min_hazard)
            position[i] += 1
    return left


@njit(cache=True, nogil=True)
def reset_memory(rows, users, cuts, user_ptr, inter_item, inter_ratio, inter_time, skip_below, hist, hist_ratio,
                 hist_skipped, hist_time, hist_count, consumed):
    """Start each row's memory from its user's real history before the cut: the last H logged interactions,
    right-aligned (-1 / NaN / False padding), and ``consumed`` = every item logged before the cut."""
    H = hist.shape[1]
    for i in range(len(rows)):
        r, start, cut = rows[i], user_ptr[users[i]], cuts[i]
        consumed[r, :] = False
        for j in range(start, start + cut):
            consumed[r, inter_item[j]] = True
        for h in range(H):
            j = start + cut - H + h
            if j < start:
                hist[r, h], hist_ratio[r, h], hist_skipped[r, h], hist_time[r, h] = -1, np.nan, False, np.nan
            else:
                hist[r, h], hist_ratio[r, h], hist_time[r, h] = inter_item[j], inter_ratio[j], inter_time[j]
                hist_skipped[r, h] = inter_ratio[j] < skip_below  # NaN compares False
        hist_count[r] = cut
