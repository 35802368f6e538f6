# Two entry points for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint tools bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

## demo: build a sandbox organization, scan it into an embedded PostgreSQL, print the verdicts
demo: $(STAMP)
	$(BIN)/vaultscan demo

## tools: external checkers the tests drive (promtool, prometheus, helm)
tools:
	bash scripts/install-test-tools.sh

## test: install everything the tests need, then run them
test: $(STAMP) tools
	PATH="$(CURDIR)/.tools/bin:$$PATH" $(BIN)/ruff check .
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
	rm -rf $(VENV) .tools .vaultscan
