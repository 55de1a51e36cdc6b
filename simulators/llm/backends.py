"""Where the LLM user's option scores come from: the in-process tree scorer (``backend="torch"``, the default:
:class:`~simulators.llm.scoring.TreeScorer`) or a vLLM server (``backend="vllm"``: :class:`VLLMScorer`).

Both give the same thing: for every row's branches (the item questions after the user's context), the distribution
over the option tokens and the probability mass on them (the format-health signal), then one round of follow-ups
(the reason or the rating) after each branch.

:class:`VLLMScorer` speaks vLLM's OpenAI-compatible ``/v1/completions``: token-id prompts laid out system text,
user context, item question (so vLLM's prefix cache shares the first two across a user's items), ``max_tokens=1``,
``temperature=0``, ``logprob_token_ids`` = the option tokens (vLLM returns their full-vocabulary log-probabilities;
they are renormalised here and their mass kept), ``return_tokens_as_token_ids`` (answers keyed by token id, never
by decoded text). One HTTP call per option set and chunk of prompts, so a vector step is a few calls. Timeouts and
retries are bounded in count and time; a server that cannot be reached or answers wrongly raises
:class:`BackendError`, which the simulator counts and handles by its ``on_error`` like any unusable answer.

At bind the simulator scores two probe prompts on the server and in-process (:meth:`VLLMScorer.check_model`): a server
of another model or adapter is refused instead of answering plausibly and wrongly.

Decision heads read the model's hidden states, which a server does not return: they need ``backend="torch"``.
Reasons in words (``explain=``) are still generated in-process.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

__all__ = ["BACKENDS", "BackendError", "VLLMScorer"]

BACKENDS = ("torch", "vllm")


class BackendError(RuntimeError):
    """The scoring server could not be reached, or its answer could not be used (the message says which)."""


@dataclass
class PromptTree:
    """What :meth:`VLLMScorer.score` hands to :meth:`VLLMScorer.follow_up`: each row's branch prompts (token ids)."""

    prompts: list[list[list[int]]]
    followed: bool = field(default=False)


class VLLMScorer:
    """Option scoring over an OpenAI-compatible vLLM server (module docstring); the interface of ``TreeScorer``.

    base_url: the server's ``.../v1`` URL (loopback, e.g. ``http://127.0.0.1:8000/v1``).
    model: the served model name (None: the first of ``GET /v1/models``).
    timeout / retries / chunk: seconds per HTTP call, extra attempts after a connection error or a 5xx answer
        (with 0.5 s, 1 s, ... back-off), prompts per call.
    """

    def __init__(self, base_url: str, tokenizer, system_text: str, model: str | None = None, timeout: float = 60.0,
                 retries: int = 2, chunk: int = 256) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must be an http(s) URL of an OpenAI-compatible server (e.g. http://127.0.0.1:8000/v1), got {base_url!r}.")
        if timeout <= 0 or retries < 0 or chunk < 1:
            raise ValueError(f"timeout must be > 0, retries >= 0 and chunk >= 1; got {timeout}, {retries}, {chunk}.")
        self.base_url = base_url.rstrip("/")
        self.tokenizer = tokenizer
        self.timeout, self.retries, self.chunk = float(timeout), int(retries), int(chunk)
        self.system_ids = tokenizer(system_text, add_special_tokens=False)["input_ids"]
        self.tokens_forwarded = 0  # prompt tokens sent (the server's prefix cache may skip many of them)
        self.calls = 0
        self.model = model or self._served_model()

    # ------------------------------------------------------------------------------------------ HTTP
    def _request(self, path: str, payload: dict | None = None) -> dict:
        url = f"{self.base_url}{path}"
        data = None if payload is None else json.dumps(payload).encode()
        last = None
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(0.5 * 2 ** (attempt - 1))
            req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    self.calls += 1
                    return json.loads(resp.read())
            except urllib.error.HTTPError as err:
                body = err.read().decode(errors="replace")[:300]
                if err.code < 500:
                    raise BackendError(f"{url} refused the request (HTTP {err.code}): {body}") from None
                last = f"HTTP {err.code}: {body}"
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as err:
                last = f"{type(err).__name__}: {getattr(err, 'reason', err)}"
            except json.JSONDecodeError as err:
                raise BackendError(f"{url} answered with something that is not JSON ({err}).") from None
        raise BackendError(f"{url} failed {self.retries + 1} time(s), last: {last}. Is the server running "
                           f"(recsim serve-simulator) and is base_url right?")

    def _served_model(self) -> str:
        data = self._request("/models").get("data") or []
        if not data:
            raise BackendError(f"{self.base_url}/models lists no model.")
        return str(data[0]["id"])

    # --------------------------------------------------------------------------------------- scoring
    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        return [self.tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]

    def option_probs(self, prompts: Sequence[list[int]], options: Sequence[Sequence[int]]) -> tuple[list[np.ndarray], np.ndarray]:
        """For each token-id prompt, the renormalised distribution over its option tokens and their raw mass."""
        dists: list[np.ndarray | None] = [None] * len(prompts)
        mass = np.zeros(len(prompts))
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, opt in enumerate(options):
            groups.setdefault(tuple(int(t) for t in opt), []).append(i)
        for opt, idx in groups.items():
            for start in range(0, len(idx), self.chunk):
                part = idx[start : start + self.chunk]
                batch = [list(map(int, prompts[i])) for i in part]
                self.tokens_forwarded += sum(map(len, batch))
                answer = self._request("/completions", {
                    "model": self.model, "prompt": batch, "max_tokens": 1, "temperature": 0.0, "logprobs": 1,
                    "logprob_token_ids": list(opt), "return_tokens_as_token_ids": True,
                })
                choices = sorted(answer.get("choices") or [], key=lambda c: c.get("index", 0))
                if len(choices) != len(part):
                    raise BackendError(f"{self.base_url}/completions answered {len(choices)} choices for {len(part)} prompts.")
                for i, choice in zip(part, choices):
                    top = ((choice.get("logprobs") or {}).get("top_logprobs") or [None])[0] or {}
                    missing = [t for t in opt if f"token_id:{t}" not in top]
                    if missing:
                        raise BackendError(f"The server's answer has no log-probability for option token(s) {missing} "
                                           f"(does it support logprob_token_ids? vLLM >= 0.32 does).")
                    p = np.exp(np.array([top[f"token_id:{t}"] for t in opt], dtype=np.float64))
                    mass[i] = p.sum()
                    dists[i] = p / mass[i] if mass[i] > 0 else np.full(len(opt), 1.0 / len(opt))
        return dists, mass  # type: ignore[return-value]

    def score(
        self, contexts: Sequence[list[int]], branches: Sequence[Sequence[list[int]]],
        options: Sequence[Sequence[Sequence[int]]], sessions: Sequence[object] | None = None,
    ) -> tuple[list[list[np.ndarray]], np.ndarray, PromptTree]:
        """Score ``branches[i][b]`` after ``contexts[i]`` (as ``TreeScorer.score``; ``sessions`` are ignored: the
        server's own prefix cache reuses shared prefixes)."""
        prompts = [[self.system_ids + list(c) + list(b) for b in row] for c, row in zip(contexts, branches)]
        return (*self._rows(prompts, options), PromptTree(prompts))

    def follow_up(
        self, tree: PromptTree, follow: Sequence[Sequence[list[int]]], options: Sequence[Sequence[Sequence[int]]]
    ) -> tuple[list[list[np.ndarray]], np.ndarray]:
        """Append ``follow[i][b]`` after branch b of row i and score its last token (as ``TreeScorer.follow_up``)."""
        if tree.followed:
            raise RuntimeError("A PromptTree takes one round of follow-ups; score again for another round.")
        tree.followed = True
        prompts = [[p + list(f) for p, f in zip(row, frow)] for row, frow in zip(tree.prompts, follow)]
        return self._rows(prompts, options)

    def check_model(self, model, probes: Sequence[list[int]], options: Sequence[int], tolerance: float = 0.05) -> float:
        """Raise :class:`BackendError` unless the server answers ``probes`` like the in-process ``model`` (max |dp| over
        ``options`` within ``tolerance``; bf16 serving noise is ~0.04): a server of another model or adapter would
        otherwise answer plausibly and wrongly. Returns the max |dp|."""
        import torch

        remote, _ = self.option_probs(probes, [options] * len(probes))
        worst = 0.0
        for prompt, r in zip(probes, remote):
            with torch.inference_mode():
                logits = model(input_ids=torch.tensor([prompt], device=next(model.parameters()).device)).logits[0, -1].float()
            p = torch.softmax(logits, -1).cpu().numpy()[list(options)].astype(np.float64)
            worst = max(worst, float(np.abs(p / p.sum() - r).max()))
        if worst > tolerance:
            raise BackendError(f"The server at {self.base_url} (model {self.model!r}) answers unlike the simulator's own model "
                               f"(max |dp| {worst:.3f} > {tolerance} on {len(probes)} probe prompts): it serves another model "
                               f"or adapter. Serve the same ones (recsim serve-simulator --model ... --adapter ...).")
        return worst

    def _rows(self, prompts, options) -> tuple[list[list[np.ndarray]], np.ndarray]:
        flat = [p for row in prompts for p in row]
        dists, mass = self.option_probs(flat, [o for row in options for o in row])
        out, k = [], 0
        for row in prompts:
            out.append(dists[k : k + len(row)])
            k += len(row)
        return out, mass.reshape(len(prompts), -1)
