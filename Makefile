# melange-nb front door. `make help` lists the targets.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: help demo test bench clean-outputs

help: ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

# Re-install only when pyproject.toml changes (the stamp is newer otherwise).
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP) ## create .venv and install the project (only when pyproject.toml changed)

demo: $(STAMP) ## offline demo: workload, 12-rate sweep, summary, outputs/demo-sweep/index.html
	$(BIN)/melange-nb sweep -p params/sweeps/demo.yaml

test: $(STAMP) ## run the test suite
	$(BIN)/python -m pytest -q

bench: $(STAMP) ## run the benchmark scripts in bench/
	@for f in bench/*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

clean-outputs: ## delete everything under outputs/ (derived data)
	find outputs -mindepth 1 ! -name .gitkeep -exec rm -rf {} +
