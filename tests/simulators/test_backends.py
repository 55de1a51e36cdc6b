"""The vLLM backend's contract, against a local test double that speaks vLLM's HTTP (``/v1/models``,
``/v1/completions`` with token-id prompts, ``logprob_token_ids`` and ``return_tokens_as_token_ids``) and answers
with a real model's log-probabilities: same distributions as the in-process tree scorer, bounded retries, server
failures counted and handled by ``on_error``. The REAL server is checked by ``make test-vllm``."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
import torch

from simulators.base import SimulationRequest
from simulators.llm import LLMUserSimulator
from simulators.llm.backends import BackendError, VLLMScorer
from simulators.llm.simulator import LLMOutputError


class FakeVLLM:
    """A loopback HTTP server answering like vLLM from an in-process causal LM (full forward per prompt)."""

    def __init__(self, model, name: str = "tiny", tokenizer=None) -> None:
        self.model, self.name, self.tokenizer = model, name, tokenizer
        self.fail_next = 0  # answer this many requests with HTTP 503 first
        self.drop_options = False  # answer without the requested option tokens
        self.requests: list[dict] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _send(self, code: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                self._send(200, {"object": "list", "data": [{"id": fake.name, "object": "model"}]})

            def do_POST(self):
                payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append(payload)
                if fake.fail_next:
                    fake.fail_next -= 1
                    return self._send(503, {"error": "overloaded"})
                if payload.get("model") != fake.name:
                    return self._send(404, {"error": f"model {payload.get('model')} not served"})
                if "logprob_token_ids" not in payload:  # plain greedy completion (reasons in words)
                    return self._send(200, {"choices": [fake.complete(i, p, payload["max_tokens"]) for i, p in enumerate(payload["prompt"])]})
                self._send(200, {"choices": [fake.answer(i, p, payload["logprob_token_ids"]) for i, p in enumerate(payload["prompt"])]})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def answer(self, index: int, prompt: list[int], wanted: list[int]) -> dict:
        with torch.inference_mode():
            logits = self.model(input_ids=torch.tensor([prompt])).logits[0, -1].float()
        lp = torch.log_softmax(logits, -1)
        top = {} if self.drop_options else {f"token_id:{t}": float(lp[t]) for t in wanted}
        best = int(lp.argmax())
        top[f"token_id:{best}"] = float(lp[best])
        return {"index": index, "text": "", "logprobs": {"tokens": [f"token_id:{best}"], "token_logprobs": [float(lp[best])],
                                                         "top_logprobs": [top], "text_offset": [0]}}

    def complete(self, index: int, prompt: list[int], max_tokens: int) -> dict:
        with torch.inference_mode():
            out = self.model.generate(input_ids=torch.tensor([prompt]), max_new_tokens=max_tokens, do_sample=False,
                                      pad_token_id=self.tokenizer.pad_token_id)
        return {"index": index, "text": self.tokenizer.decode(out[0, len(prompt):], skip_special_tokens=True)}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def sims(tiny_llm, ml100k):
    torch_sim = LLMUserSimulator(model=tiny_llm, dtype="float32", dataset=ml100k, heads=None, min_option_mass=0.0, greedy=True)
    fake = FakeVLLM(torch_sim.model, tokenizer=torch_sim.tokenizer)
    vllm_sim = LLMUserSimulator(model=tiny_llm, dtype="float32", dataset=ml100k, heads=None, min_option_mass=0.0, greedy=True,
                                backend="vllm", base_url=fake.url, request_retries=1, request_timeout=10.0)
    yield torch_sim, vllm_sim, fake
    fake.close()


def _requests(ds, mode: str, n: int = 3, k: int = 4) -> list[SimulationRequest]:
    rng = np.random.default_rng(0)
    users = ds.users("test")[:n]
    return [SimulationRequest.from_history(ds, int(u), 5, rng.choice(ds.n_items, k, replace=False), mode, 10) for u in users]


@pytest.mark.parametrize("mode", ["page", "feed"])
def test_vllm_backend_gives_the_in_process_distributions(sims, ml100k, mode):
    torch_sim, vllm_sim, fake = sims
    reqs = _requests(ml100k, mode)
    rngs = lambda: [np.random.default_rng(i) for i in range(len(reqs))]  # noqa: E731
    a, b = torch_sim.respond(reqs, rngs()), vllm_sim.respond(reqs, rngs())
    key = "choice_probs" if mode == "page" else "skip_probs"
    for x, y in zip(a, b):
        assert y.errors == 0 and "backend_error" not in y.extra
        np.testing.assert_allclose(getattr(y, key), getattr(x, key), atol=1e-4)
        np.testing.assert_array_equal(y.skipped, x.skipped)
        np.testing.assert_allclose(y.rating, x.rating, atol=1e-6)  # the follow-up round (rating) agrees too
        assert y.extra["option_mass"] == pytest.approx(x.extra["option_mass"], abs=1e-4)
    sent = fake.requests[-1]
    assert sent["max_tokens"] == 1 and sent["temperature"] == 0.0 and sent["return_tokens_as_token_ids"] is True
    assert all(p[: len(vllm_sim.scorer.system_ids)] == vllm_sim.scorer.system_ids for p in sent["prompt"])  # shared prefix first


def test_retries_are_bounded_and_failures_are_counted(sims, ml100k):
    _, vllm_sim, fake = sims
    reqs = _requests(ml100k, "feed", n=2)
    rngs = lambda: [np.random.default_rng(i) for i in range(len(reqs))]  # noqa: E731
    vllm_sim._cache.clear()
    fake.fail_next = 1  # one 503, then the retry succeeds
    ok = vllm_sim.respond(reqs, rngs())
    assert all(r.errors == 0 for r in ok)

    raising = LLMUserSimulator(model=vllm_sim.model_name, dtype="float32", dataset=ml100k, heads=None, backend="vllm",
                               base_url=fake.url, request_retries=0, on_error="raise")
    vllm_sim._cache.clear()
    fake.fail_next = 10**6  # the server keeps failing: request_retries=1 -> 2 attempts per call, then the fallback
    before = len(fake.requests)
    out = vllm_sim.respond(reqs, rngs())
    assert len(fake.requests) - before == 2
    assert all(r.errors == 1 and r.extra["fallback"] == "fitted" and "HTTP 503" in r.extra["backend_error"] for r in out)
    with pytest.raises(LLMOutputError, match="scoring backend failed.*HTTP 503"):
        raising.respond(reqs, rngs())
    fake.fail_next = 0

    vllm_sim._cache.clear()
    fake.drop_options = True  # an answer without the option tokens is never turned into a guess
    with pytest.raises(BackendError, match=r"no log-probability for option token"):
        vllm_sim.scorer.option_probs([[1, 2, 3]], [[4, 5]])
    fake.drop_options = False


def test_unreachable_server_and_bad_settings_are_explained(sims, tokenizer):
    closed = FakeVLLM(sims[0].model)
    url = closed.url
    closed.close()  # nothing listens there now
    with pytest.raises(BackendError, match=r"failed 1 time\(s\).*Is the server running"):
        VLLMScorer(url, tokenizer, "system", retries=0, timeout=2.0)
    with pytest.raises(ValueError, match="backend='vllm' needs base_url"):
        LLMUserSimulator(model=sims[0].model_name, dtype="float32", heads=None, backend="vllm")
    with pytest.raises(ValueError, match="Decision heads read the model's hidden states"):
        LLMUserSimulator(model=sims[0].model_name, dtype="float32", heads="x", backend="vllm", base_url=url)
    with pytest.raises(ValueError, match="backend must be one of"):
        LLMUserSimulator(model=sims[0].model_name, dtype="float32", heads=None, backend="onnx")
    with pytest.raises(ValueError, match="base_url must be an http"):
        VLLMScorer("127.0.0.1:8000", tokenizer, "system")


def test_a_server_of_another_model_is_refused(sims, tiny_llm, ml100k):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(1)
    other = AutoModelForCausalLM.from_pretrained(tiny_llm)
    with torch.no_grad():
        for p in other.parameters():
            p.add_(0.5 * torch.randn_like(p))  # same architecture, other weights: plausible answers, wrong ones
    fake = FakeVLLM(other.eval())
    try:
        with pytest.raises(BackendError, match=r"answers unlike the simulator's own model .* serves another model or adapter"):
            LLMUserSimulator(model=tiny_llm, dtype="float32", dataset=ml100k, heads=None, backend="vllm", base_url=fake.url)
    finally:
        fake.close()


def test_reasons_in_words_are_generated_by_the_server(sims, ml100k):
    torch_sim, vllm_sim, fake = sims
    reqs = _requests(ml100k, "feed", n=2, k=2)
    prompts = [torch_sim.scenes.reason_prompt(r, int(r.slate[0]), False)[0] for r in reqs]
    sent = len(fake.requests)
    texts = vllm_sim.scorer.generate(prompts, 6)
    assert texts == torch_sim.generate(prompts, 6)  # greedy: the same words as in-process
    assert len(fake.requests) == sent + 1 and fake.requests[-1]["max_tokens"] == 6  # one call for the chunk


def test_a_page_where_nothing_is_clicked_sends_no_follow_up(sims, ml100k):
    """Rows without a click ask no rating: nothing is sent for them (once crashed on an empty option set)."""
    torch_sim, vllm_sim, fake = sims
    reqs = _requests(ml100k, "page", n=2)
    reqs[0].repeated[:] = True  # everything shown was consumed: only "None of these" is allowed
    rngs = lambda: [np.random.default_rng(i) for i in range(len(reqs))]  # noqa: E731
    a, b = torch_sim.respond(reqs, rngs()), vllm_sim.respond(reqs, rngs())
    assert not b[0].clicked.any() and b[0].choice_probs[-1] == 1.0 and b[0].errors == 0
    for x, y in zip(a, b):
        np.testing.assert_allclose(x.choice_probs, y.choice_probs, atol=1e-4)
        np.testing.assert_array_equal(x.clicked, y.clicked)
    dists, mass = vllm_sim.scorer.option_probs([[1, 2, 3], [4, 5]], [[7, 8], []])
    assert dists[1].shape == (0,) and mass[1] == 0.0
