# BeamDesk: `make run` starts the portal with demo data; `make test` runs the whole suite.
# Both work on a fresh machine and reuse what a previous run set up.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Python packages come from uv.lock through uv: the one on PATH, else this pinned copy,
# installed into a small venv of its own by the first target that needs it.
UV_VERSION := 0.13.9
UV_BOOT := .tools/uv
UV ?= $(or $(shell command -v uv 2>/dev/null),$(UV_BOOT)/bin/uv)
export UV_PROJECT_ENVIRONMENT := $(VENV)
export UV_PYTHON ?= $(PYTHON)
export UV_PYTHON_DOWNLOADS := never
# `make run` installs what serving needs (no test tools) and keeps what else is there;
# `make test` and `make setup` make .venv exactly the lock with every extra.
RUN_EXTRAS := --extra server --extra jupyter --extra sessions
ALL_EXTRAS := $(RUN_EXTRAS) --extra test --extra dev
FRONTEND_STAMP := beamdesk/web/static/app/.built-stamp
PROXY_STAMP := tools/jupyter-proxy/node_modules/.installed-stamp
FRONTEND_SOURCES := $(shell find frontend -path frontend/node_modules -prune -o -type f -print 2>/dev/null)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
export BEAMDESK_DEMO_PASSWORD ?=

.PHONY: run test setup setup-run lock frontend jupyter-proxy system-test-deps sandbox-deps demo lint bench clean

run: setup-run frontend jupyter-proxy sandbox-deps ## set up, create the demo facility, serve on http://127.0.0.1:8000
	$(BIN)/beamdesk db upgrade
	$(BIN)/beamdesk demo
	$(BIN)/beamdesk serve --host 127.0.0.1 --port 8000

test: setup frontend jupyter-proxy system-test-deps ## set up everything the tests need and run them all
	@$(UV) lock --check -q || { echo "uv.lock does not match pyproject.toml: run 'make lock' and commit uv.lock" >&2; exit 1; }
	$(BIN)/ruff check beamdesk tests bench tools
	$(BIN)/ruff format --check beamdesk tests bench tools
	$(BIN)/mypy
	$(BIN)/lint-imports
	cd frontend && npm run --silent typecheck && npm run --silent lint && npm test --silent
	BEAMDESK_TEST_UV=$(abspath $(UV)) BEAMDESK_TEST_POSTGRES_URL=$$(tools/postgres.sh start) $(BIN)/pytest -q -ra -n auto --maxprocesses 4 --dist worksteal

# uv sync is a no-op (well under a second) when .venv already matches uv.lock.
setup: $(UV) ## .venv with everything, as locked: the server, the hub, the test and dev tools
	$(UV) sync --frozen $(ALL_EXTRAS)

setup-run: $(UV)
	$(UV) sync --frozen --inexact $(RUN_EXTRAS)

# After changing dependencies in pyproject.toml or client/pyproject.toml: commit uv.lock too.
lock: $(UV)
	$(UV) lock

$(UV_BOOT)/bin/uv:
	$(PYTHON) -m venv $(UV_BOOT) || { $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq python3-venv >/dev/null && \
	  rm -rf $(UV_BOOT) && $(PYTHON) -m venv $(UV_BOOT); }
	$(UV_BOOT)/bin/python -m pip install -q --disable-pip-version-check uv==$(UV_VERSION)
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

# Debian's PostgreSQL server and Chromium, for the database and browser tests; nginx and
# supervisor for the production topology's test (docs/deployment.md).
system-test-deps: sandbox-deps
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || ! command -v chromium >/dev/null 2>&1 \
	    || ! test -x /usr/sbin/nginx || ! test -x /usr/bin/supervisord; then \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq postgresql chromium fonts-dejavu-core \
	    nginx supervisor >/dev/null; \
	fi

# bubblewrap confines the reader workers that parse users' files (docs/security.md).
sandbox-deps:
	@if ! command -v bwrap >/dev/null 2>&1; then \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq bubblewrap >/dev/null; \
	fi

demo: setup-run sandbox-deps
	$(BIN)/beamdesk db upgrade
	$(BIN)/beamdesk demo

lint: setup
	$(BIN)/ruff check beamdesk tests bench tools
	$(BIN)/ruff format --check beamdesk tests bench tools

bench: setup frontend
	$(BIN)/python bench/portal.py

clean:
	rm -rf $(VENV) $(UV_BOOT) beamdesk/web/static/app frontend/node_modules
