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

run: install fonts
	$(BIN)/vidgate serve

test: install fonts browser
	$(BIN)/pytest $(XDIST) $(PYTEST_ARGS)

# The quick loop: everything but the slow, marked suites (browser, multi-process, fuzzing).
test-fast: install fonts
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
