"""``RecSimEnv``: a recommender policy shows slates to a simulated user."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from recsim_env.core import EnvConfig, SessionBatch, StepOutput, empty_feedback
from recsim_env.rewards import REWARD_TERMS

__all__ = ["RecSimEnv", "step_info"]


def _filled(probs: np.ndarray | None, i: int, n: int) -> np.ndarray:
    """Row ``i`` of a simulator's distributions as a float64 array of length ``n``; NaN where it gave none."""
    return np.full(n, np.nan) if probs is None else np.asarray(probs[i], dtype=np.float64)


def step_info(out: StepOutput | None, i: int, batch: SessionBatch) -> dict[str, Any]:
    """The info dict of row ``i`` (see the RecSimEnv docstring, "Info"); ``out=None``: the same keys at reset, with
    nothing shown, NaN reward terms and NaN distributions."""
    K = batch.config.slate_size
    page = batch.config.feedback_mode == "page"
    user = int(batch.user[i]) if out is None else int(out.users[i])
    fb, row = (empty_feedback(1, K), 0) if out is None else (out.feedback, i)
    probs = None if out is None else out.choice_probs if page else out.skip_probs
    return {
        "feedback": {k: v[row] for k, v in fb.items()},  # rows of arrays made for this step: nothing writes them later
        "reward_terms": dict(zip(REWARD_TERMS, np.full(len(REWARD_TERMS), np.nan) if out is None else out.terms[i])),
        "user_index": np.int64(user), "user_id": batch.dataset.user_tokens[user],
        "choice_probs": _filled(probs, i, K + 1) if page else np.full(0, np.nan),
        "skip_probs": np.full(0, np.nan) if page else _filled(probs, i, K),
        "simulator_errors": np.int64(0 if out is None else out.errors[i]),
    }


class RecSimEnv(gym.Env):
    """A user session on a recommender: each step the policy shows a slate, the simulated user reacts.

    ## Description
    At reset a user is drawn from ``user_split`` of the dataset and its memory is its real
    history up to a random cut point (at least ``min_history`` interactions). Each step the policy
    shows a slate of ``slate_size`` items; the user simulator answers (one batched call per step),
    the user's memory grows with what it played, and its patience moves with skips and likes.

    ## Action Space
    ``action_mode="catalog"``: ``MultiDiscrete([n_items] * slate_size)``, item indices (the
    dataset's ``item_tokens[i]`` is the raw id). ``action_mode="candidates"``:
    ``MultiDiscrete([num_candidates] * slate_size)``, indices into ``obs["candidates"]``.
    Duplicates in a slate and already-consumed items are legal: they are never clicked, are
    fast-skipped in feed mode and count in the ``repeat`` reward term. A wrong shape, a
    non-integer or an out-of-range index raises ``ValueError`` saying what was expected.

    ## Observation Space
    A ``Dict`` of numeric arrays (SB3 ``MultiInputPolicy`` accepts it):

    | key | shape | meaning |
    | --- | --- | --- |
    | user | (d_user,) | one-hot demographics (zero-width if the dataset has no user file) |
    | history_items | (memory_size,) | memory item indices, oldest first, -1 = empty |
    | history_feedback | (memory_size, 3) | per memory item: present, fast-skipped, watch ratio |
    | profile | (d_text,) | recency-weighted taste profile of watched memory items |
    | patience | (1,) | remaining patience |
    | step | (1,) | steps taken in this episode |
    | consumed | (n_items,) | catalog mode only: MultiBinary mask of items the user already consumed |
    | candidates | (num_candidates,) | candidates mode only: item indices the action indexes |
    | candidate_features | (num_candidates, d_text + 3) | candidates mode only: text, popularity, mean rating, mean watch ratio |

    Text and per-item feedback are in ``info``.

    ## Feedback modes
    ``page``: the user clicks at most one item (or none); the clicked item is played with a
    watch ratio, and a clicked item can still be fast-skipped (watch ratio < 0.3): the click and the
    watching are separate decisions, as in real feeds (the ``click`` and ``skip`` terms both count it).
    ``feed``: every item plays in order and is fast-skipped (watch ratio < 0.3) or watched. MovieLens has ratings only; its watch ratio is the proxy
    ``(rating - 1) / 4`` (see ``recsim_env.data``), so rating <= 2 is a fast skip and rating >= 4 a like.

    ## Rewards
    ``sum(weight * term)`` over the terms of ``recsim_env.rewards`` (click, watch_ratio, skip,
    repeat, like); weights from ``reward_weights`` (default click 1, watch_ratio 1, skip -0.2,
    repeat -1, like 0). ``info["reward_terms"]`` has every raw term.

    ## Starting State
    Random user of ``user_split`` and random cut of its real history; patience ``dynamics.initial``.

    ## Episode End
    Terminated when the user leaves: ``session_end="patience"`` (v0): patience reaches 0 (it falls with skips and
    empty pages, rises with likes: ``dynamics``); ``session_end="fitted"`` (v1): after each interaction the user
    leaves with the hazard of the leaving model fitted on the dataset's train users' real sessions
    (``recsim_env.sessions.LeaveModel``: position in the session, disliked / liked, the user's tenure; never below
    ``MIN_HAZARD`` = 0.001, so the user tires under any policy); in feed mode a user who leaves after item k has not
    seen the items after it (``played`` False there), in page mode a page without a click counts as a disliked
    interaction; patience is then not used (it stays at ``dynamics.initial``). A ``LeaveModel`` object can be passed
    instead. Either way the simulator can also say the user leaves. Truncated after ``max_episode_steps``
    (``gym.make`` adds ``TimeLimit(100)`` by default). Stepping an ended episode (terminated, or truncated by
    ``max_episode_steps``) without ``reset()`` raises ``RuntimeError``.
    ``reset(options={"user_index": u, "history_cut": c})`` starts the episode with dataset user ``u`` (any split) and
    its first ``c`` logged interactions as the past (both optional; ``history_cut`` needs ``user_index``), e.g. to
    replay held-out sessions; other options raise ``ValueError``.

    ## Info
    The same keys at reset and at every step (numpy scalars and arrays; NaN where not known, e.g. at reset):
    ``feedback``: per-item arrays of shape (K,) (``recsim_env.core.empty_feedback``): item_id (-1 where nothing was
    shown, as at reset), position, clicked, played, skipped (False where not played), watch_ratio (-1 where not
    played or unknown), rated and rating (-1 where not rated), reason_class and reason_text ("" where none): no NaN
    or None, so Gymnasium's env checker and Minari take them; ``reward_terms`` (term -> float64);
    ``user_index`` (the dataset's user index; ``obs["user"]`` holds its demographics), ``user_id`` (raw id);
    no key repeats an observation key (patience and step are in the observation); ``choice_probs``: page mode
    (K + 1,), the distribution over the slate and, last, "none";
    ``skip_probs``: feed mode (K,), P(fast skip) per item (each has shape (0,) in the other mode, NaN at reset or
    where the simulator gives none); ``simulator_errors`` (unusable model outputs this step).

    ## Arguments
    ``dataset`` ("ml-100k" or a directory of RecBole atomic files, or a ``Dataset``),
    ``simulator`` ("fitted", "llm", or any object with ``respond(requests, rngs)``; see
    ``simulators``), ``simulator_kwargs`` (options of a simulator given by name, e.g.
    ``{"model": "<dir>", "adapter": "<dir>", "heads": "<dir>", "explain": "negative"}`` for "llm"; on ml-100k "llm"
    decides with the shipped decision heads on the base model (``simulators/llm/heads/``) unless ``"adapter"`` or
    ``"heads"`` is given; ``{"adapter": "smollm2-135m-ml100k-sgrpo"}`` is the earlier SFT + S-GRPO adapter answering in
    letters, ``{"adapter": None}`` the base model), ``feedback_mode``
    ("page" | "feed", default "feed"), ``action_mode`` ("catalog" | "candidates"),
    ``slate_size`` (10), ``num_candidates`` (50), ``candidate_generator`` (default
    ``MixedCandidates``: popular, collaborative, random), ``user_split`` ("train"), ``memory_size``
    (30), ``min_history`` (5), ``reward_weights``, ``dynamics`` (``UserDynamics`` or dict),
    ``max_episode_steps`` (None: rely on the TimeLimit wrapper), ``profile_decay`` (0.9), ``session_end``
    ("patience" in v0, "fitted" in v1, or a ``LeaveModel``).

    ## Version History
    * v1: sessions end by the leaving model fitted on the dataset's real sessions (``session_end="fitted"``); v0's
      patience left users in page mode for ~100 steps and ended random feed sessions after ~2 steps, neither grounded
      in data (``benchmarks/results/sessions.md``).
    * v0: initial version (``session_end="patience"``).
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(self, render_mode: str | None = None, **kwargs: Any) -> None:
        if render_mode not in (None, "ansi"):
            raise ValueError(f"render_mode must be None or 'ansi', got {render_mode!r}.")
        self.render_mode = render_mode
        self.config = EnvConfig.from_kwargs(kwargs, "RecSimEnv")
        self.batch = SessionBatch(self.config, 1)
        self.dataset = self.batch.dataset
        self.simulator = self.batch.simulator
        self.observation_space = self.batch.observation_space
        self.action_space = self.batch.action_space
        self._rows = np.zeros(1, dtype=np.int64)
        self._started = False
        self._ended = False
        self._last_info: dict[str, Any] | None = None

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        options = dict(options or {})
        unknown = sorted(set(options) - {"user_index", "history_cut"})
        if unknown:
            raise ValueError(f"RecSimEnv.reset understands options 'user_index' and 'history_cut', got {unknown}.")
        if "history_cut" in options and "user_index" not in options:
            raise ValueError("options['history_cut'] needs options['user_index'] (whose history to cut).")
        user = cut = None
        if "user_index" in options:
            user, cut = self.batch.check_start(options["user_index"], options.get("history_cut"))
        super().reset(seed=seed)
        self.batch.reset_rows(self._rows, [self.np_random], user=user, cut=cut)
        self._started = True
        self._ended = False
        self._last_info = None
        return self._single(self.batch.observe(self._rows)), step_info(None, 0, self.batch)

    def step(self, action: Any) -> tuple[dict, float, bool, bool, dict]:
        if not self._started:
            raise RuntimeError("Call env.reset() before env.step().")
        if self._ended:
            raise RuntimeError("This episode has ended (terminated or truncated): call env.reset() before env.step().")
        slate = self.batch.validate(action, ())
        out = self.batch.step_rows(self._rows, slate[None], [self.np_random])
        info = step_info(out, 0, self.batch)
        self._last_info = info
        terminated, truncated = bool(out.terminated[0]), bool(out.truncated[0])
        self._ended = terminated or truncated
        return self._single(out.obs), float(out.reward[0]), terminated, truncated, info

    def close(self) -> None:
        self.batch.close()
        super().close()

    @staticmethod
    def _single(obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {k: v[0] for k, v in obs.items()}

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        lines = [f"user {self.dataset.user_tokens[int(self.batch.user[0])]} patience {self.batch.patience[0]:.2f} step {int(self.batch.steps[0])}"]
        fb = (self._last_info or {}).get("feedback")
        for k in range(len(fb["item_id"]) if fb else 0):
            seen = f"skipped={fb['skipped'][k]} watch={fb['watch_ratio'][k]:.2f}" if fb["played"][k] else "not played"
            lines.append(f"  [{k}] item {self.dataset.item_tokens[fb['item_id'][k]]}: clicked={fb['clicked'][k]} {seen}")
        return "\n".join(lines)
