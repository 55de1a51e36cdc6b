"""Peer simulators measured beside RecSimEnv by ``benchmarks/throughput.py``, each in its own virtualenv.

``recsim_steps.py`` (RecSim 0.2.4) and ``recogym_steps.py`` (RecoGym 0.1.3.0) run inside those venvs: their pins
(TensorFlow 2.15 and numpy < 2, old scipy / pandas) cannot live next to this project's. :data:`PEERS` says how each
venv is made; :func:`ensure_venv` makes it once (``.venv-peers/<name>``), :func:`measure` runs the script there.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

__all__ = ["PEERS", "ensure_venv", "measure"]

HERE = Path(__file__).resolve().parent
VENVS = HERE.parent.parent / ".venv-peers"

TORCH_WHEELS = Path("/opt/wheels")  # a local CPU torch wheel, where the machine has one (as the Makefile)

# name -> (pip install argument lists, run in order; packages removed afterwards; script)
PEERS: dict[str, tuple[list[list[str]], list[str], str]] = {
    # recsim 0.2.4 imports tensorflow; jax/flax (pulled by its dopamine dependency) break that import here
    "recsim": ([["recsim==0.2.4", "tensorflow==2.15.1", "numpy<2"]], ["jax", "jaxlib", "flax"], "recsim_steps.py"),
    # recogym's declared deps pull tensorflow, CUDA torch and jupyter; its env needs only these (torch because the
    # package imports its agents module; the CPU build)
    "recogym": ([["--no-deps", "recogym==0.1.3.0"],
                 ["gym==0.26.2", "numpy<2", "scipy<1.12", "pandas<3", "numba", "tqdm", "matplotlib", "absl-py",
                  "simplegeneric", "scikit-learn"],
                 ["--find-links", str(TORCH_WHEELS), "torch==2.13.0"] if TORCH_WHEELS.is_dir()
                 else ["--index-url", "https://download.pytorch.org/whl/cpu", "torch==2.13.0"]],
                [], "recogym_steps.py"),
}


def ensure_venv(name: str) -> Path:
    """The python of peer ``name``'s venv, created and installed on first use (minutes; needs the package index)."""
    installs, remove, _ = PEERS[name]
    venv = VENVS / name
    python = venv / "bin" / "python"
    stamp = venv / ".installed"
    if not stamp.is_file():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        for args in installs:
            subprocess.run([str(python), "-m", "pip", "install", "-q", *args], check=True)
        if remove:
            subprocess.run([str(python), "-m", "pip", "uninstall", "-q", "-y", *remove], check=True)
        stamp.write_text("\n".join(" ".join(a) for a in installs) + "\n")
    return python


def measure(name: str, seconds: float, **options: int) -> dict:
    """Run peer ``name``'s script for about ``seconds`` of CPU time; its JSON line: steps, cpu_seconds, config."""
    python = ensure_venv(name)
    args = [str(python), str(HERE / PEERS[name][2]), "--seconds", str(seconds)]
    for key, value in options.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    done = subprocess.run(args, check=True, capture_output=True, text=True, timeout=600)
    return json.loads(done.stdout.strip().splitlines()[-1])
