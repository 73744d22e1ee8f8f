# Titanium: `make run` starts the suite, `make test` proves it. Both install what is missing first.
SHELL := /bin/bash
UV_VERSION := 0.13.9
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
PYTHON := .venv/bin/python

.PHONY: install run test lint format clean

.tools/bin/uv:
	python3 -m venv .tools
	.tools/bin/pip install --quiet uv==$(UV_VERSION)

install: $(if $(filter .tools/bin/uv,$(UV)),.tools/bin/uv)
	$(UV) sync --all-packages --frozen

run: install
	$(PYTHON) -m titanium_common.suite

lint: install
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .

test: lint
	$(UV) run --frozen pytest

format: install
	$(UV) run --frozen ruff check --fix .
	$(UV) run --frozen ruff format .

clean:
	rm -rf .venv .tools .pytest_cache .ruff_cache test-output
