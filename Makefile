# The two commands a new user needs: `make demo` (end-to-end demo) and `make test` (the whole suite).
# Both create .venv and install everything on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
SHARED_DATA := $(wildcard ../shared/data/banking77/train.csv)
export TRIAGE_DATA_DIR ?= $(if $(SHARED_DATA),$(abspath ../shared/data/banking77),)
PIP_FLAGS := $(if $(wildcard /opt/wheels),--find-links /opt/wheels,)
PYTEST_ARGS ?=
# Two test processes (pytest-xdist, whole files per process): most tests wait on brokers, workers and
# timeouts rather than compute, so two cut the wall time by about a third on 2 cores.
TEST_WORKERS ?= 2
PYTEST := $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --durations=15

.PHONY: install demo test lint reliability bench clean compose-smoke

$(BIN)/triage: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(PIP_FLAGS) "torch==2.13.0"
	$(BIN)/pip install -q $(PIP_FLAGS) -e ".[dev]"
	touch $@

install: $(BIN)/triage

demo: install
	$(BIN)/triage demo

test: install
	$(PYTEST) $(PYTEST_ARGS)

bench: install
	$(BIN)/triage bench all

reliability: install
	$(PYTEST) -m reliability $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy schemas trainer worker triage loadtest tests

clean:
	rm -rf $(VENV) results .pytest_cache

compose-smoke:
	bash deploy/compose-smoke.sh
