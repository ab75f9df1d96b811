"""Heal while a year of catchup runs, on the real scheduler with the PostgreSQL metadata DB.

Ops meet gaps first while a new chart's catchup is still running: periods whose runs were deleted
in Airflow, or whose rankings were deleted, behind the catchup front. Healing then must backfill
only those, never a period the catchup creates in its turn (Airflow's scheduler and a backfill
racing for one run crash the scheduler with ``UniqueViolation dag_run_dag_id_logical_date_key``).
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest
import requests
from sqlalchemy import delete, func, select

from chartsync.store.tables import chart, chart_ranking, chart_sync_schedule
from stacks import start_airflow, stop_airflow, wait_for

pytestmark = pytest.mark.integration

SLUG = "deezer-top-100-gb-daily"
DAG_ID = f"chart_sync__{SLUG}"
HEAL_AT = (40, 140, 240)  # stored periods when each heal is made


class Api:
    def __init__(self, services):
        self.base = services.api_url
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {services.token()}"

    def get(self, path: str, **params) -> dict:
        r = self.session.get(self.base + path, params=params, timeout=60)
        assert r.status_code == 200, (path, r.status_code, r.text[:500])
        return r.json()

    def runs(self) -> list[dict]:
        found, offset = [], 0
        while True:
            page = self.get(f"/api/v2/dags/{DAG_ID}/dagRuns", limit=100, offset=offset, order_by="logical_date")
            found += page["dag_runs"]
            offset += 100
            if offset >= page["total_entries"]:
                return found


def stored(engine, chart_id: int) -> list[date]:
    with engine.connect() as conn:
        return sorted(conn.execute(select(chart_ranking.c.period).where(chart_ranking.c.chart_id == chart_id)).scalars())


def make_gaps_behind_the_front(api: Api, engine, chart_id: int, marker: int) -> list[date]:
    """Two periods whose runs are deleted in Airflow and one whose ranking is deleted: gaps the
    catchup has passed, which only a heal closes."""
    done = [r for r in api.runs() if r["state"] == "success" and r["run_type"] == "scheduled"]
    chosen = done[marker % 7 + 2: marker % 7 + 5]
    periods = [date.fromisoformat(r["logical_date"][:10]) for r in chosen]
    for run in chosen[:2]:
        r = api.session.delete(f"{api.base}/api/v2/dags/{DAG_ID}/dagRuns/{run['dag_run_id']}", timeout=60)
        assert r.status_code == 204, r.text
    with engine.begin() as conn:
        conn.execute(delete(chart_ranking).where(chart_ranking.c.chart_id == chart_id,
                                                 chart_ranking.c.period.in_(periods)))
    return periods


def test_heal_three_times_while_a_year_of_catchup_runs(airflow_postgres):
    af = airflow_postgres
    af.env["CHARTSYNC_RECONCILE_SECONDS"] = "3"  # the scheduler's listener starts queued heal ranges soon
    af.chartsync("charts", "import", "--platform", "deezer")
    af.chartsync("schedules", "add", SLUG, "--frequency", "daily")  # a year of history, by catchup
    engine = af.engine()
    with engine.connect() as conn:
        chart_id = conn.execute(select(chart.c.id).where(chart.c.slug == SLUG)).scalar_one()
        first = conn.execute(select(chart_sync_schedule.c.history_start)
                             .where(chart_sync_schedule.c.chart_id == chart_id)).scalar_one()
    expected = [first + timedelta(days=i) for i in range((date.today() - first).days)]
    assert len(expected) >= 365

    services = start_airflow(af)
    scheduler = services.procs["scheduler"]
    results = []
    try:
        api = Api(services)
        for marker in HEAL_AT:
            wait_for(lambda: len(stored(engine, chart_id)) >= marker, 900, f"{marker} periods stored", interval=2)
            holes = make_gaps_behind_the_front(api, engine, chart_id, marker)
            r = api.session.post(f"{api.base}/chart-sync/api/sync/gaps/heal/", json={"slugs": [SLUG]}, timeout=120)
            assert r.status_code == 200, r.text
            (result,) = r.json()["results"]
            results.append((holes, result))
            assert scheduler.poll() is None, "the scheduler exited"

        def complete():
            assert scheduler.poll() is None, "the scheduler exited"
            runs = api.runs()
            assert not [r for r in runs if r["state"] == "failed"], "Airflow shows a failed run"
            active = [r for r in runs if r["state"] in ("queued", "running")]
            backfills = api.get("/api/v2/backfills", dag_id=DAG_ID)["backfills"]
            return (not active and all(b["completed_at"] for b in backfills)
                    and stored(engine, chart_id) == expected and not api.get(
                        "/chart-sync/api/sync/gaps/", chart_id=chart_id)["items"])

        wait_for(complete, 600, "the catchup and every heal to complete", interval=5)
        runs = api.runs()
        assert scheduler.poll() is None
    finally:
        stop_airflow(services)

    log = (af.home / "logs" / "scheduler.out").read_text(errors="replace")
    assert "UniqueViolation" not in log and "dag_run_dag_id_logical_date_key" not in log
    assert any(result["waiting"] for _, result in results), "no heal was made while the catchup ran"
    for holes, result in results:
        assert result["status"] in ("created", "already-running", "nothing-to-heal"), result
        if result["waiting"]:  # made during the catchup: it says what it left to it, and backfills none of it
            assert "wait for the catchup" in result["message"]
            assert all(date.fromisoformat(g["end"]) < date.fromisoformat(result["waiting"]["front"])
                       for g in result["queued"])
            if result["status"] == "created":
                assert date.fromisoformat(result["end"]) < date.fromisoformat(result["waiting"]["front"])
        if result["status"] == "created":
            assert date.fromisoformat(result["start"]) <= min(holes)
    with engine.connect() as conn:  # every period stored exactly once
        per_period = conn.execute(select(chart_ranking.c.period, func.count()).where(
            chart_ranking.c.chart_id == chart_id).group_by(chart_ranking.c.period)).all()
    assert sorted(p for p, _ in per_period) == expected and {n for _, n in per_period} == {1}
    logical = [r["logical_date"][:10] for r in runs if r["logical_date"]]
    assert len(logical) == len(set(logical))
    assert not [r for r in runs if r["state"] != "success"]
