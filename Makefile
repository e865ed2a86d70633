# Timbrespace: `make run` serves, `make test` tests; each sets up what it needs on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
APT_PACKAGES := amsynth liblo-tools jackd2 supercollider-language supercollider-server puredata-core fluidsynth fluid-soundfont-gm libfluidsynth3 chromium timidity freepats musescore-general-soundfont timgm6mb-soundfont espeak-ng
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
ARGS ?=

.PHONY: run test test-threads check lint typecheck bench screenshot deps venv clean

run: venv
	$(BIN)/timbrespace serve $(ARGS)

# Two workers (pytest-xdist): most of the suite waits on real time (audio clocks, servers, sleeps in
# outside clients), not on a core. The slowest tests are listed at the end: the suite must stay
# under 8 minutes on 2 cores.
test: venv
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup --durations=15 $(ARGS)

# The numeric tests again with torch and numpy at 2 threads: no claim may rest on one thread count's
# reductions (tests/README.md). One process: its tests compute, and two threads already fill two cores.
test-threads: venv
	TIMBRESPACE_TEST_THREADS=2 $(BIN)/python -m pytest -q -m 'numeric and not slow' --durations=5 $(ARGS)

check: lint typecheck test

lint: venv
	$(BIN)/ruff check server tests clients

typecheck: venv
	$(BIN)/mypy

bench: venv
	$(BIN)/timbrespace bench --json docs/bench.json --markdown docs/bench.md $(ARGS)

# The README's picture of the /play page, from a server of its own with two other players.
screenshot: venv
	$(BIN)/python -m timbrespace.web.screenshot docs/play.png

# Debian packages: the amSynth banks and reference synth, liblo's oscsend/oscdump, JACK, and the
# outside clients and peers the tests and bench use for real (sclang, scsynth, Pure Data), and the
# browser the /play page's tests drive (Playwright runs Debian's chromium: never `playwright install`).
deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	fi

venv: deps $(VENV)/.installed

# torch first, pinned: that wheel is on local disk here; elsewhere the registry provides it.
# The timbral models (eval patch-vae) without deps: their setup.py names the dead `sklearn`
# package; their real dependencies come from the [eval] extra.
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[dev,eval]'
	$(BIN)/python -m pip install -q --no-deps timbral_models==0.4.0
	touch $@

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
