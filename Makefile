# One task runner: the README, CI and developers all call these targets.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
WHEEL_VENV := .venv-wheel
STAMP := $(VENV)/.installed

.PHONY: try test lint typecheck unit unit-in-venv wheel-e2e bench-quick clean vsix vscode-check

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,dev]'
	touch $(STAMP)

## make try: set everything up and open Neovim with ghost text on the sample project.
try: $(STAMP)
	cd examples/sample_project && PATH="$(CURDIR)/$(BIN):$$PATH" \
		$(CURDIR)/$(BIN)/nvim -u $(CURDIR)/neovim/try/init.lua inventory.py

## make test: set everything up from nothing and run every check. Every test runs once: the
## end-to-end tests (-m e2e) against the installed wheel, the others in the dev venv.
test: lint typecheck vscode-check unit-in-venv wheel-e2e

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy server completion context ranker postprocess backends edit modelserver telemetry bench model

## make unit: every test, end-to-end ones included, against the dev venv.
unit: $(STAMP)
	$(BIN)/pytest

# The tests that wheel-e2e does not run; plus dense retrieval's end-to-end tests, whose
# success path needs the `tokenizers` extra (the wheel's venv has the core dependencies
# only, where the same tests check the message that says it is missing).
unit-in-venv: $(STAMP)
	$(BIN)/pytest -m "not e2e"
	$(BIN)/pytest tests/test_dense_e2e.py

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

## The VS Code extension (vscode-extension/): Node 20 and npm, nothing else; packages from
## package-lock.json. `make vsix` writes dist/ghostcomplete-<version>.vsix, offline.
VSCODE := vscode-extension
VSCODE_STAMP := $(VSCODE)/node_modules/.installed

$(VSCODE_STAMP): $(VSCODE)/package.json $(VSCODE)/package-lock.json
	cd $(VSCODE) && npm ci --no-audit --no-fund --loglevel=error
	touch $(VSCODE_STAMP)

vsix: $(VSCODE_STAMP)
	cd $(VSCODE) && node package.mjs

# Strict types, unit tests (test/client.test.ts drives the real server from .venv), the .vsix.
# tests/test_vscode_*.py (in `make unit`) check the manifest against the server's settings,
# the .vsix's contents and the settings the bundle sends.
vscode-check: $(STAMP) $(VSCODE_STAMP)
	cd $(VSCODE) && node_modules/.bin/tsc --noEmit -p .
	cd $(VSCODE) && node_modules/.bin/vitest run --reporter=dot
	$(MAKE) --no-print-directory vsix

clean:
	rm -rf $(VENV) $(WHEEL_VENV) dist build *.egg-info
	rm -rf $(VSCODE)/node_modules $(VSCODE)/out
