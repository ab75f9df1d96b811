"""The chart DB connection: a SQLite file is refused where tasks run on other machines."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from chartsync.store.engine import ChartDbConfigError, url_from_connection

SQLITE = SimpleNamespace(conn_type="sqlite", host="/data/chart.db", schema=None)


@pytest.mark.parametrize("executor", ["LocalExecutor", "airflow.executors.local_executor.LocalExecutor"])
def test_a_sqlite_chart_db_on_one_machine(monkeypatch, executor):
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", executor)
    assert url_from_connection(SQLITE).database == "/data/chart.db"


@pytest.mark.parametrize("executor", ["CeleryExecutor", "LocalExecutor,KubernetesExecutor",
                                      "airflow.providers.celery.executors.celery_executor.CeleryExecutor"])
def test_a_sqlite_chart_db_is_refused_where_tasks_run_elsewhere(monkeypatch, executor):
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", executor)
    with pytest.raises(ChartDbConfigError, match=r"SQLite file is one machine's.*use a postgres connection"):
        url_from_connection(SQLITE)
    postgres = SimpleNamespace(conn_type="postgres", host="db", port=5432, login="u", password="p", schema="charts")
    assert url_from_connection(postgres).host == "db"
