# Two entry points for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint tools bench clean constraints

# constraints.txt pins every dependency: this venv, CI and the image install the same set
CONSTRAINTS := constraints.txt

$(STAMP): pyproject.toml $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c $(CONSTRAINTS) -e '.[test]'
	touch $(STAMP)

## constraints: re-resolve the dependencies to their newest allowed versions and pin them
constraints:
	rm -rf .venv-lock
	$(PYTHON) -m venv .venv-lock
	.venv-lock/bin/pip install --quiet --upgrade pip
	.venv-lock/bin/pip install --quiet '.[test]'
	{ sed -n '1,3p' $(CONSTRAINTS); .venv-lock/bin/pip freeze --exclude vaultscan; } > $(CONSTRAINTS).new
	mv $(CONSTRAINTS).new $(CONSTRAINTS)
	rm -rf .venv-lock

## demo: build a sandbox organization, scan it into an embedded PostgreSQL, print the verdicts
demo: $(STAMP)
	$(BIN)/vaultscan demo

## tools: external checkers the tests drive (promtool, prometheus, helm)
tools:
	bash scripts/install-test-tools.sh

## test: install everything the tests need, check the layering and complexity, run the tests
test: $(STAMP) tools
	PATH="$(CURDIR)/.tools/bin:$$PATH" $(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/python scripts/check_complexity.py
	PATH="$(CURDIR)/.tools/bin:$$PATH" $(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

## bench: every performance harness; each prints its numbers (see benchmarks/README.md)
bench: $(STAMP)
	$(BIN)/python benchmarks/engine_bench.py
	$(BIN)/python benchmarks/collect_bench.py
	$(BIN)/python benchmarks/storage_bench.py --embedded
	$(BIN)/python benchmarks/metrics_bench.py
	$(BIN)/python benchmarks/outlets_bench.py

clean:
	rm -rf $(VENV) .tools .vaultscan .venv-lock
