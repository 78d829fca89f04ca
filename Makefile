# The two commands: `make run` and `make test`. Both install into one virtualenv, .venv, on first
# use: `make run` only what the server needs (`pip install -e .`), `make test` tops the same venv
# up with the test, lint, postgres, s3, redis and diffusers extras. Each has its own stamp, so
# neither reinstalls what the other installed, in either order.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUN_STAMP := $(VENV)/.run-stamp
TEST_STAMP := $(VENV)/.test-stamp
# No bytecode at install (--no-compile): Python compiles what the server imports on its first
# import (about 23 MB), and the many modules it never imports take no room (pip's compile of
# everything was 72 MB).
PIP := $(BIN)/python -m pip install --quiet --no-compile
TEST_EXTRAS := test,lint,postgres,s3,redis,diffusers
PYTEST_ARGS ?=
# The suites run in parallel (pytest-xdist): many tests wait on sockets, timers or child
# processes, so three workers beat two on two cores. A module stays on one worker (loadfile):
# its module-scoped fixtures are built once. XDIST= runs everything in one process.
XDIST ?= -n 3 --dist loadfile
# The client commands, from this checkout: `make cli ARGS='generate "A cat"'`.
ARGS ?= --help

.PHONY: install install-test run cli test test-fast check lint format bench bench-api bench-scale \
	bench-dispatch clean

# What `make run` installs: the server and its CLI, nothing for tests.
install: $(RUN_STAMP)

# What `make test` installs on top.
install-test: $(TEST_STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	# Python 3.11's venv brings setuptools, which nothing here runs (pip builds vidgate in an
	# isolated environment): 9 MB less.
	$(BIN)/python -m pip uninstall --quiet --yes setuptools

$(RUN_STAMP): pyproject.toml | $(BIN)/python
	$(PIP) -e .
	touch $@

$(TEST_STAMP): pyproject.toml $(RUN_STAMP)
	# The tests build tiny diffusers pipelines on the CPU: the CPU build of torch that lies on
	# this kind of machine, pinned, so no range ever pulls a multi-GB CUDA build.
	$(PIP) torch==2.13.0
	$(PIP) -e '.[$(TEST_EXTRAS)]'
	touch $@

# Fonts for the preview engine's text (`make run` needs them): Debian's Noto (Latin, Greek,
# Cyrillic, Arabic, Hebrew, Devanagari and most other scripts), Noto CJK, Symbola (emoji), and
# FriBiDi, which Pillow's text layout loads for right-to-left scripts. Installed with apt when
# missing; without apt a message says so and those scripts render as empty boxes.
FONT_PACKAGES := fonts-noto-core fonts-noto-cjk fonts-symbola libfribidi0
FONT_FILES := /usr/share/fonts/truetype/noto/NotoSans-Regular.ttf \
	/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc \
	/usr/share/fonts/truetype/ancient-scripts/Symbola_hint.ttf
.PHONY: fonts
fonts:
	@missing=; for f in $(FONT_FILES); do [ -f "$$f" ] || missing=1; done; \
	if [ -z "$$missing" ]; then :; \
	elif ! command -v apt-get >/dev/null 2>&1; then \
		echo "note: no apt-get here: install Noto, Noto CJK and Symbola fonts, or non-Latin prompts render as boxes"; \
	else \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		echo "installing fonts with apt-get (for the preview engine's text)"; \
		{ $$SUDO apt-get update -qq && \
		  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(FONT_PACKAGES); } || \
		{ echo "note: the fonts could not be installed: non-Latin prompts render as boxes"; \
		  [ "$$CI" != true ]; }; \
	fi

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

run: install fonts
	$(BIN)/vidgate serve

# The `vidgate` command of this checkout (it lives in .venv/bin, which is not on PATH).
cli: install
	@$(BIN)/vidgate $(ARGS)

test: install-test fonts browser wrk
	$(BIN)/pytest $(XDIST) $(PYTEST_ARGS)

# The quick loop: everything but the slow, marked suites (browser, multi-process, fuzzing).
test-fast: install-test fonts
	$(BIN)/pytest $(XDIST) -m "not slow" $(PYTEST_ARGS)

lint: install-test
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

format: install-test
	$(BIN)/ruff check --fix src tests bench
	$(BIN)/ruff format src tests bench

check: lint test

bench: install-test
	$(BIN)/python bench/preview.py

# The scale-out benchmarks (docs/benchmarks.md); BENCH_ARGS=--quick for a smoke run.
# bench-api drives both servers with wrk.
bench-api: install-test wrk
	$(BIN)/python bench/api.py $(BENCH_ARGS)

bench-scale: install-test
	$(BIN)/python bench/scale.py $(BENCH_ARGS)

bench-dispatch: install-test
	$(BIN)/python bench/dispatch.py $(BENCH_ARGS)

# wrk, the load generator bench-api and bench-render drive the servers with (and so `make test`'s
# smoke run of bench-api): Debian's, installed when missing.
.PHONY: wrk
wrk:
	@if command -v wrk >/dev/null 2>&1; then :; \
	elif ! command -v apt-get >/dev/null 2>&1; then \
		echo "error: bench-api and bench-render need wrk (the HTTP load generator) on PATH"; exit 2; \
	else \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -qq && \
		$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; \
	fi

# API latency while preview renders run, in child processes and in the server's thread (wrk).
.PHONY: bench-render
bench-render: install-test wrk
	$(BIN)/python bench/render_load.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache data
