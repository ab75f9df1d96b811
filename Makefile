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

.PHONY: setup run test lint bench clean

$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip uv
	$(BIN)/uv pip install -q --python $(BIN)/python -r requirements.txt -e .
	# the plugin importable by name (as Airflow does), for import-linter's contracts over it
	echo "$(CURDIR)/plugins" > "$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')/chart_sync_plugins.pth"
	touch $@

## setup: venv + packages, Airflow metadata DB, chart DB, airflow_settings.yaml loaded (idempotent, no server)
setup: $(VENV)/.installed
	mkdir -p $(AIRFLOW_HOME)
	$(BIN)/airflow db migrate > $(AIRFLOW_HOME)/db-migrate.log 2>&1 || (tail -20 $(AIRFLOW_HOME)/db-migrate.log; exit 1)
	$(BIN)/chartsync settings load airflow_settings.yaml
	$(BIN)/chartsync db upgrade

## run: setup (quiet: its output goes to $(AIRFLOW_HOME)/logs/setup.log), then the product: emulator, demo charts
## and schedules, Airflow on http://127.0.0.1:8080, a banner with the logins; Ctrl-C stops it all
## (sizing, host, logs: python -m chartsync.demo --help)
run:
	@mkdir -p $(AIRFLOW_HOME)/logs
	@echo "chart-sync: setting up and starting (a minute or two; logs in $(AIRFLOW_HOME)/logs/)"
	@$(MAKE) --no-print-directory setup > $(AIRFLOW_HOME)/logs/setup.log 2>&1 \
		|| { tail -25 $(AIRFLOW_HOME)/logs/setup.log; echo "chart-sync: make setup failed, see $(AIRFLOW_HOME)/logs/setup.log"; exit 1; }
	@$(BIN)/python -m chartsync.demo --emulator-port $(EMULATOR_PORT)

## test: setup, then the whole suite (starts and stops its own servers)
test: setup
	$(BIN)/python -m pytest -p no:cacheprovider $(PYTEST_ARGS)

## lint: ruff, and import-linter's contracts (the layers, who may import airflow, a pure core)
lint: $(VENV)/.installed
	$(BIN)/uv pip install -q --python $(BIN)/python ruff==0.14.0 import-linter==2.16
	$(BIN)/ruff check include dags plugins tests benchmarks
	PYTHONPATH=$(CURDIR)/include:$(CURDIR)/plugins $(BIN)/lint-imports --no-cache

bench: setup
	$(BIN)/python benchmarks/parse.py

clean:
	rm -rf $(AIRFLOW_HOME) $(VENV)
