# chart-sync: `make run` (the product) and `make test` (the suite). See README.md.
SHELL := /bin/bash
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
PYTHON ?= python3
EMULATOR_PORT ?= 8899

export AIRFLOW_HOME ?= $(CURDIR)/.airflow
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__PLUGINS_FOLDER := $(CURDIR)/plugins
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS ?= admin:admin,viewer:viewer
export PATH := $(BIN):$(PATH)
export PYTHONPATH := $(CURDIR)/include$(if $(PYTHONPATH),:$(PYTHONPATH))

.PHONY: setup databases env run test test-fast bytecode lint docs image-deps bench clean

# requirements-dev.txt = requirements.txt (the runtime, what the image installs) + the suite's tools
$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip uv
	# compiled at install: a Python that may not write bytecode (PYTHONDONTWRITEBYTECODE) would otherwise compile
	# Airflow from source in every process it starts (3.4 s instead of 1.4 s to import it, per task try)
	$(BIN)/uv pip install -q --compile-bytecode --python $(BIN)/python -r requirements-dev.txt -e .
	# the plugin importable by name (as Airflow does), for import-linter's contracts over it
	echo "$(CURDIR)/plugins" > "$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')/chart_sync_plugins.pth"
	touch $@

## setup: venv + packages, then on the project's PostgreSQL ($(AIRFLOW_HOME)/postgres, started for this and
## stopped after; see python -m chartsync.localdb --help): Airflow's metadata DB, the chart DB,
## airflow_settings.yaml loaded. Idempotent.
setup: $(VENV)/.installed
	mkdir -p $(AIRFLOW_HOME)
	$(BIN)/python -m chartsync.localdb exec -- $(MAKE) --no-print-directory databases

databases:
	$(BIN)/airflow db migrate > $(AIRFLOW_HOME)/db-migrate.log 2>&1 || (tail -20 $(AIRFLOW_HOME)/db-migrate.log; exit 1)
	$(BIN)/chartsync settings load airflow_settings.yaml
	$(BIN)/chartsync db upgrade

## shell: the variables that point airflow and chartsync commands at make run's databases:
## eval "$$(make -s env)"
env: $(VENV)/.installed
	@$(BIN)/python -m chartsync.localdb env

## run: setup (quiet: its output goes to $(AIRFLOW_HOME)/logs/setup.log), then the product: emulator, demo charts
## and schedules, Airflow on http://127.0.0.1:8080, a banner with the logins; Ctrl-C stops it all
## (sizing, host, logs: python -m chartsync.demo --help)
run:
	@mkdir -p $(AIRFLOW_HOME)/logs
	@echo "chart-sync: setting up and starting (a minute or two; logs in $(AIRFLOW_HOME)/logs/)"
	@$(MAKE) --no-print-directory setup > $(AIRFLOW_HOME)/logs/setup.log 2>&1 \
		|| { tail -25 $(AIRFLOW_HOME)/logs/setup.log; echo "chart-sync: make setup failed, see $(AIRFLOW_HOME)/logs/setup.log"; exit 1; }
	@$(MAKE) --no-print-directory bytecode
	@$(BIN)/python -m chartsync.demo --emulator-port $(EMULATOR_PORT)

# the project's own modules compiled ahead (only what changed): every task try and command imports them, and a
# Python that may not write bytecode (PYTHONDONTWRITEBYTECODE) would compile them again each time
bytecode: $(VENV)/.installed
	@$(BIN)/python -m compileall -q include plugins > /dev/null

## test: the whole suite (starts and stops its own servers: PostgreSQL, the emulator, Airflow), in TEST_WORKERS
## pytest-xdist processes (default 3 on any machine: an integration test spends much of its time waiting on
## Airflow's scheduling, so a third process fills 2 cores; a file's tests stay in one: they share its fixtures);
## TEST_WORKERS=0: one process
TEST_WORKERS ?= 3
## test-fast: the inner loop while coding: every test that needs no server (unit, DAG integrity, CLI, recipes), in
## under a minute; it starts no PostgreSQL, no Airflow, no browser (tests marked `server` are left to make test);
## FAST_WORKERS processes (default 2: these tests keep a core busy each)
FAST_WORKERS ?= 2
test-fast: $(VENV)/.installed bytecode
	CHARTSYNC_TEST_NO_SERVERS=1 $(BIN)/python -m pytest -p no:cacheprovider -n $(FAST_WORKERS) -m "not server" -q $(PYTEST_ARGS)

test: $(VENV)/.installed bytecode
	$(BIN)/python -m pytest -p no:cacheprovider -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS)

## lint: ruff, and import-linter's contracts (the layers, who may import airflow, a pure core)
lint: $(VENV)/.installed
	$(BIN)/uv pip install -q --python $(BIN)/python ruff==0.14.0 import-linter==2.16
	$(BIN)/ruff check include dags plugins tests benchmarks
	PYTHONPATH=$(CURDIR)/include:$(CURDIR)/plugins $(BIN)/lint-imports --no-cache

## docs: the manual (docs/, mkdocs.yml) built with mkdocs build --strict into site/ (git-ignored): a broken link
## or anchor fails it. The REST API and CLI reference pages are written from the code at build time (docs/hooks/)
docs: $(VENV)/.installed
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir $(CURDIR)/site  # the variable: no end-of-life banner

## image-deps: the Docker image's install (deploy/install-runtime.sh, the same steps on the same files the
## Dockerfile copies) in a fresh venv of the image's Python under a temp dir, then pip check and the imports
## below. CI runs it beside make test. IMAGE_DEPS_INSTALLER=pip: pip itself, as in the image (13 s with uv,
## cached; 68 s with pip; both resolve the same versions)
IMAGE_PYTHON := python$(shell sed -n 's/^FROM apache\/airflow:.*-python\([0-9.]*\).*/\1/p' Dockerfile)
IMAGE_DEPS_INSTALLER ?= uv
# what must import in the image besides pip check's metadata: the executor's modules (celery 5.7.0 dropped a
# name the celery provider 3.26.0 imports; pip check cannot see that) and chart-sync's CLI
IMAGE_IMPORTS := import airflow.providers.celery.executors.celery_executor_utils, chartsync.cli.main
image-deps: $(VENV)/.installed
	@set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	python=$$(command -v $(IMAGE_PYTHON) || true); \
	if [ -z "$$python" ]; then python=$$(command -v python3); \
		echo "image-deps: $(IMAGE_PYTHON) (the image's) not found, using $$($$python -V)"; fi; \
	mkdir -p $$tmp/chart-sync/deploy; \
	cp requirements.txt pyproject.toml $$tmp/chart-sync/; \
	cp deploy/install-runtime.sh $$tmp/chart-sync/deploy/; \
	cp -r include $$tmp/chart-sync/; \
	$$python -m venv $$tmp/venv; \
	echo "image-deps: $$($$tmp/venv/bin/python -V), installer $(IMAGE_DEPS_INSTALLER)"; \
	export PYTHON=$$tmp/venv/bin/python CHARTSYNC_INSTALLER=$(IMAGE_DEPS_INSTALLER); \
	bash $$tmp/chart-sync/deploy/install-runtime.sh requirements $$tmp/chart-sync; \
	bash $$tmp/chart-sync/deploy/install-runtime.sh package $$tmp/chart-sync; \
	$$tmp/venv/bin/python -m pip check; \
	AIRFLOW_HOME=$$tmp/airflow-home $$tmp/venv/bin/python -c "$(IMAGE_IMPORTS)" \
		&& echo "image-deps: the CeleryExecutor and the chartsync package import"

bench: setup
	$(BIN)/python benchmarks/parse.py

clean:
	rm -rf $(AIRFLOW_HOME) $(VENV)
