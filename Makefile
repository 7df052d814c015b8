# cohortsync — two commands: `make run` and `make test`. Everything else is optional.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
LOCK   := requirements-dev.lock

.PHONY: run test lint browser bench bench-ingest install demo clean fuzz lock load

# Every dependency at the version and hashes of the lock; then the project itself, without them
$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

## Pin pyproject.toml's dependencies again, with hashes, for Python 3.11+ on any platform:
## requirements.lock (the service) and requirements-dev.lock (make install); versions already
## pinned stay unless pyproject.toml needs others (`make lock UPGRADE=1` takes the newest)
COMPILE = $(BIN)/uv pip compile pyproject.toml --quiet --universal --python-version 3.11 \
  --generate-hashes --custom-compile-command 'make lock' $(if $(UPGRADE),--upgrade)
lock: $(STAMP)
	$(COMPILE) -o requirements.lock
	$(COMPILE) --extra dev -o $(LOCK)

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
test: $(STAMP) lint browser
	$(BIN)/python -m pytest -n $${COHORTSYNC_TEST_WORKERS:-auto} --dist loadfile -m "not alone"
	$(BIN)/python -m pytest -m alone

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

## Debian's Chromium for the web UI tests, installed when missing and apt-get can run as root;
## elsewhere the browser tests skip and say why
browser:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	      || echo "chromium could not be installed: the browser tests will skip (fail with COHORTSYNC_REQUIRE_BROWSER=1)"; \
	  else \
	    echo "no /usr/bin/chromium and no apt-get as root: the browser tests will skip (fail with COHORTSYNC_REQUIRE_BROWSER=1)"; \
	  fi; \
	fi

## The sync state machines, Schemathesis over the API and the ingestion decoders' agreement
## with the per-record checks, with ten times the examples of make test, and Schemathesis' coverage phase (tens of minutes)
fuzz: $(STAMP)
	COHORTSYNC_FUZZ_SCALE=$${COHORTSYNC_FUZZ_SCALE:-10} $(BIN)/python -m pytest -p no:cacheprovider \
	  -o timeout=0 tests/sync/test_state_machine.py tests/security/test_schemathesis.py \
	  tests/ingest/test_decoders_agree.py

## Benchmarks: prints a table and writes bench/results/latest.md
bench: $(STAMP)
	$(BIN)/python -m bench

## Load and overload against a real server (locust, 90 s per engine; PostgreSQL too when
## COHORTSYNC_TEST_POSTGRES_URL is set): prints a table, writes bench/results/load-<date>.md,
## fails when a target is missed
load: $(STAMP)
	$(BIN)/python -m bench.load

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
