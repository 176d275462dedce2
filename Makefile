# Quick start:  `make study` runs the main job, `make test` runs the tests.
# Each target installs what it needs into a local virtual environment (.venv).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
BACKENDS ?= jax torch tensorflow
PYTEST_ARGS ?=

$(VENV)/.base: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

# torch is pinned to the CPU build that installs from a local wheel; any other
# version pulls several GB of CUDA packages.
$(VENV)/.all: $(VENV)/.base
	$(PY) -m pip install -q "torch==2.13.0"
	$(PY) -m pip install -q -e ".[dev,torch,tensorflow,tensorboard,mlflow,pandas,grain,distributed,audit,crosscheck]"
	touch $@

.PHONY: study test test-fast lint
# The two-circles tutorial as a full study (13 arms x 30 seeds x 4000 epochs);
# rerunning resumes from the store. The report is written beside the store.
study: $(VENV)/.base
	$(VENV)/bin/noisewise run examples/circles.toml

# The whole suite once per backend: Keras fixes its backend at import time.
# The HTML report is checked in a real headless browser (installed if missing).
test: $(VENV)/.all lint
	@sh tests/ensure_system_packages.sh
	@set -e; for b in $(BACKENDS); do \
		echo "== KERAS_BACKEND=$$b"; \
		OMP_NUM_THREADS=1 KERAS_BACKEND=$$b $(PY) -m pytest -q -p no:cacheprovider -n auto $(PYTEST_ARGS) tests; \
	done

# The layering of docs/ARCHITECTURE.md (import-linter) and ruff's checks.
lint: $(VENV)/.base
	$(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/ruff check src tests benchmarks examples

test-fast:
	$(MAKE) test PYTEST_ARGS='-m "not slow"'
