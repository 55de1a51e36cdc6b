"""The REAL vLLM server (``make test-vllm``; skipped in ``make test``, which runs without vLLM): started on loopback
from ``.venv-vllm``, its distributions against the in-process scorer on fixed scenes, 5 env steps through it, stopped
by its PID."""

from __future__ import annotations

import os

import numpy as np
import pytest

pytestmark = pytest.mark.skipif(not os.environ.get("RECSIM_TEST_VLLM"), reason="needs the vLLM virtualenv: run `make test-vllm`")


def test_real_server_matches_in_process_and_steps_the_env(ml100k):
    import gymnasium as gym

    import recsim_env  # noqa: F401
    from benchmarks.vllm_agreement import agreement
    from simulators.llm import LLMUserSimulator
    from simulators.llm.serve import start_server

    server = start_server("smollm2-135m", dtype="float32", wait=600)
    try:
        assert server.url.startswith("http://127.0.0.1:")
        common = dict(model="smollm2-135m", adapter=None, dtype="float32", dataset=ml100k, heads=None)
        res = agreement(LLMUserSimulator(**common), LLMUserSimulator(**common, backend="vllm", base_url=server.url), ml100k, 16)
        for question, r in res.items():
            assert r["max_abs_dp"] <= 0.05 and r["argmax_agreement"] >= 0.95, (question, r)
        env = gym.make("RecSimEnv-v0", simulator="llm", feedback_mode="page", slate_size=5, simulator_kwargs={
            "heads": None, "adapter": None, "dtype": "float32", "backend": "vllm", "base_url": server.url})
        env.reset(seed=0)
        for _ in range(5):
            _, reward, *_, info = env.step(env.action_space.sample())
            assert np.isfinite(reward) and info["simulator_errors"] == 0 and info["choice_probs"].sum() == pytest.approx(1.0)
        # a vector step mixes clicked and empty pages (rows with no follow-up), and reasons in words come from the server
        envs = gym.make_vec("RecSimEnv-v0", num_envs=4, vectorization_mode="vector_entry_point", simulator="llm",
                            feedback_mode="page", slate_size=5, simulator_kwargs={
                                "heads": None, "adapter": None, "dtype": "float32", "backend": "vllm", "base_url": server.url,
                                "explain": "always", "reason_max_tokens": 8})
        envs.reset(seed=1)
        sim = envs.unwrapped.simulator
        sent = sim.scorer.calls
        texts = []
        for _ in range(3):
            *_, info = envs.step(envs.action_space.sample())
            assert (info["simulator_errors"] == 0).all()
            texts += [t for row in info["feedback"]["reason_text"] for t in row if t]
        assert texts and sim.scorer.calls > sent
    finally:
        server.stop()
    with pytest.raises(ProcessLookupError):
        os.kill(server.pid, 0)
