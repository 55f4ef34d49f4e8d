# BeamDesk: `make run` starts the portal with demo data; `make test` runs the whole suite.
# Both work on a fresh machine and reuse what a previous run set up.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
FRONTEND_STAMP := beamdesk/web/static/app/.built-stamp
PROXY_STAMP := tools/jupyter-proxy/node_modules/.installed-stamp
FRONTEND_SOURCES := $(shell find frontend -path frontend/node_modules -prune -o -type f -print 2>/dev/null)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
export BEAMDESK_DEMO_PASSWORD ?=

.PHONY: run test setup frontend jupyter-proxy system-test-deps sandbox-deps demo lint bench clean

run: setup frontend jupyter-proxy sandbox-deps ## set up, create the demo facility, serve on http://127.0.0.1:8000
	$(BIN)/beamdesk db upgrade
	$(BIN)/beamdesk demo
	$(BIN)/beamdesk serve --host 127.0.0.1 --port 8000

test: setup frontend jupyter-proxy system-test-deps ## set up everything the tests need and run them all
	$(BIN)/ruff check beamdesk tests bench tools
	$(BIN)/ruff format --check beamdesk tests bench tools
	BEAMDESK_TEST_POSTGRES_URL=$$(tools/postgres.sh start) $(BIN)/pytest -q -ra

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

frontend: $(FRONTEND_STAMP)

$(FRONTEND_STAMP): $(FRONTEND_SOURCES)
	@if [ -f frontend/build.sh ]; then bash frontend/build.sh; else echo "no front end to build"; fi
	mkdir -p $(dir $@) && touch $@

# configurable-http-proxy for `beamdesk hub`, pinned by tools/jupyter-proxy/package-lock.json.
jupyter-proxy: $(PROXY_STAMP)

$(PROXY_STAMP): tools/jupyter-proxy/package.json tools/jupyter-proxy/package-lock.json
	cd tools/jupyter-proxy && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Debian's PostgreSQL server and Chromium, for the database and browser tests.
system-test-deps: sandbox-deps
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || ! command -v chromium >/dev/null 2>&1; then \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq postgresql chromium fonts-dejavu-core >/dev/null; \
	fi

# bubblewrap confines the reader workers that parse users' files (docs/security.md).
sandbox-deps:
	@if ! command -v bwrap >/dev/null 2>&1; then \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq bubblewrap >/dev/null; \
	fi

demo: setup sandbox-deps
	$(BIN)/beamdesk db upgrade
	$(BIN)/beamdesk demo

lint: setup
	$(BIN)/ruff check beamdesk tests bench tools
	$(BIN)/ruff format --check beamdesk tests bench tools

bench: setup frontend
	$(BIN)/python bench/portal.py

clean:
	rm -rf $(VENV) beamdesk/web/static/app frontend/node_modules
