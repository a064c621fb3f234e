# The two commands a new user needs: `make demo` (end-to-end demo) and `make test` (the whole suite).
# Both create .venv and install everything on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
SHARED_DATA := $(wildcard ../shared/data/banking77/train.csv)
export TRIAGE_DATA_DIR ?= $(if $(SHARED_DATA),$(abspath ../shared/data/banking77),)
SHARED_OOD := $(wildcard ../shared/data/clinc_oos/oos_val.jsonl)
# Out-of-scope validation texts that `triage evaluate` (and training's evaluation) report; never fitted on.
export TRIAGE_OOD_DIR ?= $(if $(SHARED_OOD),$(abspath ../shared/data/clinc_oos),)
# Installs come from requirements.lock (every package pinned with its hashes; `make lock` rewrites it from
# pyproject.toml), through uv.
LOCK := requirements.lock
# The image's runtime dependencies (no dev extras, no torch: each image variant installs its own torch build).
IMAGE_LOCK := deploy/requirements.lock
UV_VERSION := 0.13.9
UV := $(BIN)/uv
# torch's CPU build (no CUDA libraries): this machine's wheel cache when it has one, else PyTorch's CPU index.
TORCH_CPU := $(if $(wildcard /opt/wheels),--find-links /opt/wheels,--extra-index-url https://download.pytorch.org/whl/cpu --index-strategy unsafe-best-match)
PYTEST_ARGS ?=
# Three test processes (pytest-xdist, whole files per process): most tests wait on brokers, workers and
# timeouts rather than compute; on 2 cores the suite took 555 s with three against 625 s with two (runs back
# to back). Files run in the order tests/conftest.py gives them: those that need no trained checkpoint first,
# while a child of the controller trains it.
TEST_WORKERS ?= 3
PYTEST := $(BIN)/python -m pytest --dist loadfile --no-loadscope-reorder --durations=15

.PHONY: install lock demo test test-unit lint reliability bench gpu-check clean compose-smoke

$(UV):
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q "uv==$(UV_VERSION)"

# sync: exactly the locked set (anything else is removed), then the project itself, then a check that the
# lock still satisfies pyproject.toml (a dependency added there but not locked fails here, by name).
$(BIN)/triage: $(LOCK) pyproject.toml | $(UV)
	$(UV) pip sync -q --python $(BIN)/python --require-hashes $(TORCH_CPU) $(LOCK)
	$(UV) pip install -q --python $(BIN)/python --no-deps -e .
	$(UV) pip check -q --python $(BIN)/python
	touch $@

install: $(BIN)/triage

# Linux x86_64 and Python 3.11, like CI; the CPU torch wheel, so no nvidia-* package may be locked.
COMPILE := $(UV) pip compile -q pyproject.toml --generate-hashes --python-version 3.11 \
	--python-platform x86_64-manylinux_2_28 $(TORCH_CPU) --custom-compile-command "make lock"
lock: | $(UV)
	$(COMPILE) --extra dev -o $(LOCK)
	@! grep -q '^nvidia-' $(LOCK) || { echo "$(LOCK) pulls CUDA torch (nvidia-*): lock against the CPU wheel"; exit 1; }
	$(COMPILE) --no-emit-package torch -o $(IMAGE_LOCK)

demo: install
	$(BIN)/triage demo

# Lint first (style, types, the import layers in pyproject.toml), then the whole suite: what CI runs.
test: lint
	$(PYTEST) -n $(TEST_WORKERS) $(PYTEST_ARGS)

# The unit tier: every test whose fixtures need no broker, Redis or trained checkpoint (tests/conftest.py marks
# the others `integration`), so nothing has to run beside it. `make test` stays the whole suite and what CI runs.
# Two processes: these tests compute rather than wait, so a third would only share the two cores.
test-unit: install
	$(PYTEST) -n 2 -m "not integration" $(PYTEST_ARGS)

bench: install
	$(BIN)/triage bench all

# On a machine with CUDA (and a CUDA build of torch in .venv), no network: trains the quick preset on the GPU,
# drains a backlog through the worker on backend auto (torch bf16/fp16) and prints one JSON line; exits 2 without CUDA.
gpu-check: install
	$(BIN)/python -m loadtest.bench.gpu_check

reliability: install
	$(PYTEST) -n $(TEST_WORKERS) -m reliability $(PYTEST_ARGS)

# The docs site too: --strict fails on a broken link or anchor; tests/docs refuses development history in the docs.
lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy schemas inference trainer worker feedback loadtest triage tests
	$(BIN)/lint-imports
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/docs

clean:
	rm -rf $(VENV) results .pytest_cache site

compose-smoke:
	bash deploy/compose-smoke.sh
