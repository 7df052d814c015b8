# cohortsync — two commands: `make run` and `make test`. Everything else is optional.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: run test lint bench bench-ingest install demo clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## Set up, migrate the embedded SQLite database, show the sync demo once, serve on :8000
run: $(STAMP)
	$(BIN)/cohortsync migrate
	$(BIN)/cohortsync demo sync --skip-if-done
	$(BIN)/cohortsync serve

## The sync demo again: partner emulators, a cohort exported to each, lists checked per run
demo: $(STAMP)
	$(BIN)/cohortsync migrate
	$(BIN)/cohortsync demo sync

## Set up, lint, type-check and run the whole test suite
test: $(STAMP) lint
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

## Benchmarks: prints a table and writes bench/results/latest.md
bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
