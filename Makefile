# Two commands on a fresh machine: `make run` and `make test`. CI runs `make test`.
SHELL := /bin/bash
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	command -v $$p >/dev/null && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
	&& { echo $$p; break; }; done)
VENV := .venv
BIN := $(VENV)/bin
JS := tests/js

.PHONY: run test lint bench install dev node chromium postgres wrk clean

run: install
	$(BIN)/mainstem serve --config examples/demo.yaml

test: dev node chromium postgres lint
	$(BIN)/pytest

lint: dev
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy --strict src

bench: dev wrk postgres
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/plans.py
	$(BIN)/python bench/delivery.py
	$(BIN)/python bench/warehouse.py
	cd bench && ../$(BIN)/python scale.py
	$(BIN)/python bench/identity.py

install: $(VENV)/.installed
dev: $(VENV)/.dev-installed

$(BIN)/python:
	@test -n "$(PYTHON)" || { echo "Mainstem needs Python 3.11 or newer on PATH"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	@touch $@

$(VENV)/.dev-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@ $(VENV)/.installed

node: $(JS)/node_modules/.installed
$(JS)/node_modules/.installed: $(JS)/package.json $(JS)/package-lock.json
	cd $(JS) && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

chromium:
	@command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }

wrk:
	@command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }

postgres:
	@pg_isready -q -h 127.0.0.1 -p 5432 || pg_ctlcluster --skip-systemctl-redirect 15 main start
	@for i in $$(seq 30); do pg_isready -q -h 127.0.0.1 -p 5432 && exit 0; sleep 1; done; \
		echo "PostgreSQL did not start on 127.0.0.1:5432"; exit 1

clean:
	rm -rf $(VENV) $(JS)/node_modules .mainstem-demo
