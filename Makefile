# The two commands: `make run` and `make test`. Everything installs into .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: install run test test-fast check lint format bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# The tests build tiny diffusers pipelines on the CPU: the CPU build of torch that lies on
	# this kind of machine, pinned, so no range ever pulls a multi-GB CUDA build.
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev,diffusers]'
	touch $(STAMP)

run: install
	$(BIN)/vidgate serve

test: install
	$(BIN)/pytest $(PYTEST_ARGS)

# The quick loop: everything but the slow, marked suites (browser, multi-process, fuzzing).
test-fast: install
	$(BIN)/pytest -m "not slow" $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

format: install
	$(BIN)/ruff check --fix src tests bench
	$(BIN)/ruff format src tests bench

check: lint test

bench: install
	$(BIN)/python bench/preview.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache data
