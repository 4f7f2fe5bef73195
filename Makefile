# One task runner: the README, CI and developers all call these targets.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
WHEEL_VENV := .venv-wheel
STAMP := $(VENV)/.installed

.PHONY: try test lint typecheck unit wheel-e2e bench-quick clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,dev]'
	touch $(STAMP)

## make try: set everything up and open Neovim with ghost text on the sample project.
try: $(STAMP)
	cd examples/sample_project && PATH="$(CURDIR)/$(BIN):$$PATH" \
		$(CURDIR)/$(BIN)/nvim -u $(CURDIR)/neovim/try/init.lua inventory.py

## make test: set everything up from nothing and run every check.
test: lint typecheck unit wheel-e2e

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy server context ranker backends telemetry bench model

unit: $(STAMP)
	$(BIN)/pytest

# Build the wheel, install it into a fresh venv and run the end-to-end tests against that
# install: a subpackage missing from pyproject.toml vanishes from the wheel, not from -e.
wheel-e2e: $(STAMP)
	rm -rf dist $(WHEEL_VENV)
	$(BIN)/python -m build --wheel --outdir dist . >/dev/null
	$(PYTHON) -m venv $(WHEEL_VENV)
	$(WHEEL_VENV)/bin/pip install --quiet dist/ghostcomplete-*.whl
	GHOSTCOMPLETE_SERVER=$(CURDIR)/$(WHEEL_VENV)/bin/ghostcomplete $(BIN)/pytest -m e2e

## The benchmarks' quick runs (also covered by tests/test_bench.py in `make unit`).
bench-quick: $(STAMP)
	$(BIN)/ghostcomplete bench acceptance --quick
	$(BIN)/ghostcomplete bench latency --quick

clean:
	rm -rf $(VENV) $(WHEEL_VENV) dist build *.egg-info
