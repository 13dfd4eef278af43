# melange-nb front door. `make help` lists the targets.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# A real benchmark client (NVIDIA AIPerf) in its own venv, kept out of the product's dependencies:
# tests/test_measured.py drives it against a local test server and imports what it writes.
BENCH_VENV := .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed
AIPERF_VERSION := 0.13.0
# Every optional part (pyproject's extras) plus the test tools: `make install` installs them all.
EXTRAS := dev,explore,predict,bench,scale
# The lowest versions pyproject.toml declares for the direct dependencies, resolved by uv
# (`--resolution lowest-direct`) into a venv of their own: do the declared lower bounds run?
LOWEST_VENV := .venv-lowest
FAST_TESTS := -q -m "not slow"

.PHONY: help install bench-client demo test test-fast test-lowest bench browser-deps clean-outputs explore

help: ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

# Re-install only when pyproject.toml changes (the stamp is newer otherwise).
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[$(EXTRAS)]"
	touch $(STAMP)

install: $(STAMP) ## create .venv and install the project (only when pyproject.toml changed)

$(BENCH_STAMP):
	test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet "aiperf==$(AIPERF_VERSION)"
	touch $(BENCH_STAMP)

bench-client: $(BENCH_STAMP) ## create .venv-bench with AIPerf, the benchmark client of the profile-import test

demo: $(STAMP) ## offline demo: workload, 12-rate sweep, summary, outputs/demo-sweep/index.html
	$(BIN)/melange-nb sweep -p params/sweeps/demo.yaml

test: $(STAMP) $(BENCH_STAMP) ## run the whole test suite (what CI runs; 15+ minutes on 2 cores)
	$(BIN)/python -m pytest -q

test-fast: $(STAMP) ## run the fast tier: every test not marked slow (no notebooks, kernels, browser, AIPerf, sweeps)
	$(BIN)/python -m pytest $(FAST_TESTS)

test-lowest: ## install the lowest declared dependency versions into .venv-lowest (uv) and run the fast tests there
	test -x $(LOWEST_VENV)/bin/python || $(PYTHON) -m venv $(LOWEST_VENV)
	$(LOWEST_VENV)/bin/python -m pip install --quiet uv
	$(LOWEST_VENV)/bin/uv pip install --quiet --python $(LOWEST_VENV)/bin/python --resolution lowest-direct -e ".[$(EXTRAS)]"
	$(LOWEST_VENV)/bin/python -m pytest $(FAST_TESTS)

browser-deps: ## install Debian's chromium for the browser test (needs root and apt-get; otherwise that test skips)
	@if command -v chromium >/dev/null 2>&1; then echo "chromium: $$(command -v chromium)"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null && echo "installed chromium"; \
	else echo "chromium not installed (not root or no apt-get): the browser test will skip"; fi

explore: $(STAMP) ## serve the explorer notebook (notebooks/00_explore.ipynb) with Voila on http://127.0.0.1:8866/
	$(BIN)/voila notebooks/00_explore.ipynb --no-browser --Voila.ip=127.0.0.1 --port=8866

bench: $(STAMP) ## run the benchmark scripts in bench/
	@for f in bench/*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

clean-outputs: ## delete everything under outputs/ (derived data)
	find outputs -mindepth 1 ! -name .gitkeep -exec rm -rf {} +
