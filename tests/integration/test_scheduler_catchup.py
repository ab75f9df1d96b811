"""A real scheduler, dag-processor and api-server run a chart DAG's catchup: one run per period."""

from __future__ import annotations

import time
from datetime import date, timedelta

import pytest
import requests
from sqlalchemy import select, update

from chartsync.store.tables import chart, chart_ranking, chart_sync_execution, chart_sync_schedule
from stacks import start_airflow, stop_airflow, wait_for

pytestmark = pytest.mark.integration

SLUG = "deezer-top-100-fr-daily"
DAG_ID = f"chart_sync__{SLUG}"
HISTORY_DAYS = 4


def dag_runs(services, token) -> list[dict]:
    r = requests.get(f"{services.api_url}/api/v2/dags/{DAG_ID}/dagRuns", params={"limit": 100},
                     headers={"Authorization": f"Bearer {token}"}, timeout=10)
    if r.status_code == 404:
        return []
    r.raise_for_status()
    return r.json()["dag_runs"]


def test_catchup_creates_exactly_one_run_per_period(airflow_sqlite):
    af = airflow_sqlite
    af.chartsync("charts", "import", "--platform", "deezer")
    af.chartsync("schedules", "add", SLUG, "--frequency", "daily")
    start = date.today() - timedelta(days=HISTORY_DAYS)
    engine = af.engine()
    with engine.begin() as conn:  # a short history window keeps the test quick
        conn.execute(update(chart_sync_schedule).values(history_start=start))
    expected = {start + timedelta(days=i) for i in range(HISTORY_DAYS)}

    services = start_airflow(af)
    try:
        token = services.token()

        def all_succeeded():
            runs = dag_runs(services, token)
            failed = [r for r in runs if r["state"] == "failed"]
            assert not failed, f"runs failed: {failed}; see {af.home / 'logs'}"
            return len(runs) >= HISTORY_DAYS and all(r["state"] == "success" for r in runs) and runs

        wait_for(all_succeeded, 300, f"{HISTORY_DAYS} successful catchup runs", interval=2)
        time.sleep(8)  # a few more scheduler loops: nothing more may be created
        runs = dag_runs(services, token)
    finally:
        stop_airflow(services)

    assert len(runs) == HISTORY_DAYS
    assert {date.fromisoformat(r["logical_date"][:10]) for r in runs} == expected
    assert {r["data_interval_start"][:10] for r in runs} == {d.isoformat() for d in expected}
    assert all(r["run_type"] == "scheduled" for r in runs)
    with engine.connect() as conn:
        chart_id = conn.execute(select(chart.c.id).where(chart.c.slug == SLUG)).scalar_one()
        periods = [r.period for r in conn.execute(select(chart_ranking).where(chart_ranking.c.chart_id == chart_id))]
        executions = conn.execute(select(chart_sync_execution)).all()
    assert sorted(periods) == sorted(expected)
    assert {e.status for e in executions} == {"success"}
    assert {e.run_id for e in executions} == {r["dag_run_id"] for r in runs}
    # sync_immediately (the default): the first catchup run synced the newest period before its own
    newest = max(expected)
    first_run = next(r["dag_run_id"] for r in runs if r["logical_date"][:10] == start.isoformat())
    first_run_periods = [e.period for e in sorted(executions, key=lambda e: e.id) if e.run_id == first_run]
    assert first_run_periods == [newest, start]
    newest_rows = [e for e in executions if e.period == newest]
    assert sorted(e.rankings_created for e in newest_rows) == [0, 1]  # its own run later found it stored
    assert len(executions) == HISTORY_DAYS + 1
