"""chartsync.seam.airflow_settings: airflow_settings.yaml, and the connections the environment sets, as Airflow
imports them (Airflow's CLI itself replaced by a stand-in that keeps the files it is given)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from chartsync.seam import airflow_settings
from stacks import ROOT

CHART_DB = {"conn_type": "postgres", "host": "127.0.0.1", "port": 5501, "login": "chartsync",
            "password": "s3cret", "schema": "chartsync"}


def test_from_environment_takes_json_and_uris_and_only_the_ids_asked():
    env = {"AIRFLOW_CONN_CHART_DB": json.dumps(CHART_DB),
           "AIRFLOW_CONN_SOUNDCHARTS_DEFAULT": "http://soundcharts:key@127.0.0.1:9911",
           "AIRFLOW_CONN_OTHER": "http://x"}
    found = airflow_settings.from_environment(env, ["chart_db", "soundcharts_default", "absent"])
    assert found == {"chart_db": CHART_DB, "soundcharts_default": "http://soundcharts:key@127.0.0.1:9911"}


@pytest.fixture
def imported(monkeypatch) -> dict[str, dict]:
    """What each ``airflow ... import FILE`` was given, by kind, instead of running Airflow."""
    given: dict[str, dict] = {}

    def airflow(argv, **kwargs):
        kind = argv[1]
        given[kind] = json.loads(Path(argv[-1]).read_text())
        return subprocess.CompletedProcess(argv, 0, "", "")

    monkeypatch.setattr(airflow_settings.subprocess, "run", airflow)
    return given


def test_load_writes_a_connection_as_its_variable_says(imported, monkeypatch):
    """What runs is what the metadata DB holds: the variable wins over the file (and over the overrides)."""
    monkeypatch.setenv("AIRFLOW_CONN_CHART_DB", json.dumps(CHART_DB))
    monkeypatch.delenv("AIRFLOW_CONN_SOUNDCHARTS_DEFAULT", raising=False)
    counts = airflow_settings.load(ROOT / "airflow_settings.yaml",
                                   {"chart_db": {"conn_type": "sqlite", "host": "/elsewhere.db"}})
    connections = imported["connections"]
    assert connections["chart_db"] == CHART_DB
    assert connections["soundcharts_default"]["host"] == "http://127.0.0.1:8899"  # no variable: the file's
    assert counts["connections"] == len(connections) and imported["pools"] and imported["variables"]


def test_load_keeps_the_file_without_variables(imported, monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_CHART_DB", raising=False)
    monkeypatch.setenv("AIRFLOW_HOME", "/srv/airflow")
    airflow_settings.load(ROOT / "airflow_settings.yaml")
    assert imported["connections"]["chart_db"]["conn_type"] == "sqlite"
    assert imported["connections"]["chart_db"]["host"] == "/srv/airflow/chart.db"
