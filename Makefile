# The two commands of the README: `make quickstart` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: quickstart test venv services lint bench

$(BIN)/posture: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(BIN)/posture

venv: $(BIN)/posture

# Build the sample dataset, train and register a model on the embedded defaults, then serve it.
quickstart: venv
	$(BIN)/posture ingest --sample
	$(BIN)/posture train
	$(BIN)/posture models list
	$(BIN)/posture serve

services:
	bash scripts/services.sh
	bash scripts/ensure_chromium.sh
	bash scripts/ensure_nginx.sh
	bash scripts/ensure_docker.sh

test: venv services lint
	$(BIN)/python -m pytest

# ruff and mypy as configured in pyproject.toml.
lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: venv
	$(BIN)/pip install --quiet -e '.[test,bench]'
	$(BIN)/python bench/bench_features.py
