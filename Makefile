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

.PHONY: setup databases env run test test-fast bytecode lint lock docs image-deps bench clean

# requirements-dev.lock: the whole environment (the runtime set the image installs + the suite's tools), every
# package pinned with hashes, written from requirements-dev.txt and requirements.txt by `make lock`
# the lock's format is uv's: one version writes, checks and installs it
UV_VERSION := 0.13.10
$(VENV)/.installed: requirements-dev.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip uv==$(UV_VERSION)
	# compiled at install: a Python that may not write bytecode (PYTHONDONTWRITEBYTECODE) would otherwise compile
	# Airflow from source in every process it starts (3.4 s instead of 1.4 s to import it, per task try)
	$(BIN)/uv pip install -q --compile-bytecode --python $(BIN)/python --require-hashes -r requirements-dev.lock
	$(BIN)/uv pip install -q --compile-bytecode --python $(BIN)/python --no-deps -e .
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

## env: a second shell beside make run: eval "$$(make -s env)" puts the venv's airflow and chartsync first on
## PATH, with make run's AIRFLOW_HOME, DAGs and plugins folders and databases (its PostgreSQL started if it is
## not running); nothing is written to ~/airflow
env: $(VENV)/.installed
	@printf "export PATH='%s':\"\$$PATH\"\n" "$(BIN)"
	@printf "export %s='%s'\n" AIRFLOW_HOME "$(AIRFLOW_HOME)" AIRFLOW__CORE__DAGS_FOLDER "$(AIRFLOW__CORE__DAGS_FOLDER)" \
		AIRFLOW__CORE__PLUGINS_FOLDER "$(AIRFLOW__CORE__PLUGINS_FOLDER)" \
		AIRFLOW__CORE__LOAD_EXAMPLES "$(AIRFLOW__CORE__LOAD_EXAMPLES)" PYTHONPATH "$(PYTHONPATH)"
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
	$(BIN)/ruff check include dags plugins tests benchmarks
	PYTHONPATH=$(CURDIR)/include:$(CURDIR)/plugins $(BIN)/lint-imports --no-cache
	UV=$(BIN)/uv deploy/lock.sh check

## lock: rewrite requirements-dev.lock and requirements.lock from requirements-dev.txt and requirements.txt
## (deploy/lock.sh; a locked version stays unless an input moves it; LOCK_ARGS="--upgrade-package NAME" moves
## one that no input pins). Then commit the files.
lock:
	test -x $(BIN)/uv || { $(PYTHON) -m venv $(VENV) && $(BIN)/python -m pip install -q uv==$(UV_VERSION); }
	UV=$(BIN)/uv deploy/lock.sh write . $(LOCK_ARGS)

## docs: the manual (docs/, mkdocs.yml) built with mkdocs build --strict into site/ (git-ignored): a broken link
## or anchor fails it. The REST API and CLI reference pages are written from the code at build time (docs/hooks/)
docs: $(VENV)/.installed
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir $(CURDIR)/site  # the variable: no end-of-life banner

## image-deps: the Docker image's install (deploy/install-runtime.sh, the same steps on the same files the
## Dockerfile copies) in a fresh venv of the image's Python under a temp dir, then pip check and the imports
## below. CI runs it beside make test. IMAGE_DEPS_INSTALLER=pip: pip itself, as in the image (11 s with uv,
## cached; about 70 s with pip; both install the lock). The venv's pip is upgraded first, as recent as the
## image's: pip 23 refuses a hash-checked lock whose packages ask for extras (celery[redis])
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
	cp requirements.lock pyproject.toml $$tmp/chart-sync/; \
	cp deploy/install-runtime.sh $$tmp/chart-sync/deploy/; \
	cp -r include $$tmp/chart-sync/; \
	$$python -m venv $$tmp/venv; \
	$$tmp/venv/bin/python -m pip install -q --upgrade pip; \
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
