# The two commands: `make run` and `make test`. Everything installs into .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=
# The suites run in parallel (pytest-xdist): many tests wait on sockets, timers or child
# processes, so three workers beat two on two cores. A module stays on one worker (loadfile):
# its module-scoped fixtures are built once. XDIST= runs everything in one process.
XDIST ?= -n 3 --dist loadfile

.PHONY: install run test test-fast check lint format bench bench-api bench-scale bench-dispatch clean

install: $(STAMP)

# Chromium for the browser tests (`make test` needs it, `make run` does not): Debian's, driven
# through Playwright (Playwright's own browser download is not used). Installed with apt when
# missing; without apt, or when the install fails outside CI, a message says so and the browser
# tests skip.
.PHONY: browser
browser:
	@if [ -x /usr/bin/chromium ]; then :; \
	elif ! command -v apt-get >/dev/null 2>&1; then \
		echo "note: no apt-get here: install Chromium as /usr/bin/chromium to run the browser tests"; \
	else \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		echo "installing chromium with apt-get (for the browser tests)"; \
		{ $$SUDO apt-get update -qq && \
		  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } || \
		{ echo "note: chromium could not be installed: the browser tests will skip"; \
		  [ "$$CI" != true ]; }; \
	fi

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

test: install browser
	$(BIN)/pytest $(XDIST) $(PYTEST_ARGS)

# The quick loop: everything but the slow, marked suites (browser, multi-process, fuzzing).
test-fast: install
	$(BIN)/pytest $(XDIST) -m "not slow" $(PYTEST_ARGS)

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

# The scale-out benchmarks (docs/benchmarks.md); BENCH_ARGS=--quick for a smoke run.
bench-api: install
	$(BIN)/python bench/api.py $(BENCH_ARGS)

bench-scale: install
	$(BIN)/python bench/scale.py $(BENCH_ARGS)

bench-dispatch: install
	$(BIN)/python bench/dispatch.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache data
