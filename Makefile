# kfw — the front door. `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
COMP ?= house-prices
MODEL ?=
# pytest workers: two cores, one per worker (each test fits with one thread, and BLAS is
# held to one thread too: a multi-threaded BLAS beside a busy core runs many times slower).
# --dist loadfile keeps each test file on one worker: the fake Kaggle server's fixed port
# is then never wanted by two workers at once.
WORKERS ?= 2

.DEFAULT_GOAL := help
.PHONY: help setup cv audit runs submit test lint bench clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

# The install is redone only when pyproject.toml changes: the stamp is newer otherwise.
$(BIN)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "kfw needs Python >= 3.11; set PYTHON=python3.11 (or newer)")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

setup: $(BIN)/.installed  ## create .venv and install kfw (fast when nothing changed)

cv: setup  ## cross-validate a competition's roster and blend: make cv COMP=titanic [MODEL=lgbm]
	$(BIN)/kfw cv $(COMP) $(if $(MODEL),--model $(MODEL))

audit: setup  ## permuted-target leakage audit: make audit COMP=titanic
	$(BIN)/kfw audit $(COMP)

runs: setup  ## table of a competition's runs, best CV first
	$(BIN)/kfw runs $(COMP)

submit: setup  ## write the best run's validated submission: make submit COMP=titanic
	$(BIN)/kfw submit $(COMP) --dry-run --output submissions/$(COMP)/best.csv

test: setup  ## run the test suite
	OPENBLAS_NUM_THREADS=1 $(BIN)/python -m pytest -n $(WORKERS) --dist loadfile -q

lint: setup  ## ruff
	$(BIN)/ruff check .

bench: setup  ## the benchmarks (speed / quality tables, not tests)
	$(BIN)/python benchmarks/overhead.py

clean:  ## remove the virtual environment and caches (data/ and runs/ are kept)
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis build *.egg-info
