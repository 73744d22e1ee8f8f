# Titanium: `make run` starts the suite, `make test` proves it. Both install what is missing first.
SHELL := /bin/bash
UV_VERSION := 0.13.9
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
PYTHON := .venv/bin/python
# npm ci rewrites node_modules/.package-lock.json, so it reruns only when package-lock.json is newer.
DASHBOARD_MODULES := dashboard-ui/node_modules/.package-lock.json
CHROMIUM := /usr/bin/chromium

.PHONY: install run test lint format clean bench

.tools/bin/uv:
	python3 -m venv .tools
	.tools/bin/pip install --quiet uv==$(UV_VERSION)

install: $(if $(filter .tools/bin/uv,$(UV)),.tools/bin/uv)
	$(UV) sync --all-packages --frozen

$(DASHBOARD_MODULES): dashboard-ui/package-lock.json
	cd dashboard-ui && npm ci --no-audit --no-fund

# The dashboard's browser tests drive Debian's Chromium (never a downloaded browser build).
$(CHROMIUM):
	$(if $(filter 0,$(shell id -u)),,sudo) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(if $(filter 0,$(shell id -u)),,sudo) apt-get install -y -qq chromium

run: install $(DASHBOARD_MODULES)
	$(PYTHON) -m titanium_common.suite

lint: install
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .

# Tests that stop Redis mid-run start a private redis-server (never the machine's shared one).
REDIS_SERVER := /usr/bin/redis-server
$(REDIS_SERVER):
	$(if $(filter 0,$(shell id -u)),,sudo) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(if $(filter 0,$(shell id -u)),,sudo) apt-get install -y -qq redis-server

test: lint $(DASHBOARD_MODULES) $(CHROMIUM) $(REDIS_SERVER)
	$(UV) run --frozen pytest

# Benchmarks (wrk against real processes on loopback): numbers to read, never asserted.
BENCH_TOOLS := /usr/bin/wrk /usr/sbin/nginx
$(BENCH_TOOLS):
	$(if $(filter 0,$(shell id -u)),,sudo) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(if $(filter 0,$(shell id -u)),,sudo) apt-get install -y -qq wrk nginx-light

bench: install $(BENCH_TOOLS) $(REDIS_SERVER)
	for script in load-tests/bench_*.py; do $(PYTHON) $$script || exit 1; done

format: install
	$(UV) run --frozen ruff check --fix .
	$(UV) run --frozen ruff format .

clean:
	rm -rf .venv .tools .pytest_cache .ruff_cache test-output
