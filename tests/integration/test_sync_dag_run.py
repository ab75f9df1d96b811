"""A chart DAG run for real (`airflow dags test`) against the emulator, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
import requests
from sqlalchemy import func, select

from chartsync.store.tables import chart, chart_ranking, chart_ranking_entry, chart_sync_execution, track

pytestmark = pytest.mark.integration

SLUG = "spotify-top-200-global-daily"


def snapshot(engine) -> dict:
    """Everything a sync writes to the warehouse, except the execution log."""
    with engine.connect() as conn:
        return {
            "rankings": [tuple(r) for r in conn.execute(select(chart_ranking).order_by(chart_ranking.c.id))],
            "entries": [tuple(r) for r in conn.execute(select(chart_ranking_entry).order_by(chart_ranking_entry.c.id))],
            "tracks": [tuple(r) for r in conn.execute(select(track).order_by(track.c.id))],
        }


def emulator_ranking(emulator, slug: str, day: date) -> list[tuple[int, str]]:
    rows, offset = [], 0
    while True:
        r = requests.get(f"{emulator.url}/api/v2.14/chart/song/{slug}/ranking/{day.isoformat()}T00:00:00%2B00:00",
                         params={"offset": offset, "limit": 100},
                         headers={"x-app-id": "soundcharts", "x-api-key": "soundcharts"}, timeout=10)
        r.raise_for_status()
        body = r.json()
        rows += [(item["position"], item["song"]["uuid"]) for item in body["items"]]
        offset += len(body["items"])
        if offset >= body["page"]["total"]:
            return rows


def run_and_check(af, emulator):
    af.chartsync("charts", "import", "--platform", "spotify")
    af.chartsync("schedules", "add", SLUG)
    period = date.today() - timedelta(days=3)
    dag_id = f"chart_sync__{SLUG}"
    af.airflow("dags", "test", dag_id, period.isoformat())
    engine = af.engine()
    with engine.connect() as conn:
        chart_id = conn.execute(select(chart.c.id).where(chart.c.slug == SLUG)).scalar_one()
        ranking = conn.execute(select(chart_ranking).where(chart_ranking.c.chart_id == chart_id)).one()
        entries = conn.execute(
            select(chart_ranking_entry.c.position, track.c.song_uuid, chart_ranking_entry.c.trend)
            .join(track, track.c.id == chart_ranking_entry.c.track_id)
            .where(chart_ranking_entry.c.ranking_id == ranking.id).order_by(chart_ranking_entry.c.position)
        ).all()
        executions = conn.execute(select(chart_sync_execution)).all()
        track_count = conn.execute(select(func.count()).select_from(track)).scalar()
    assert ranking.period == period
    assert ranking.entry_count == 200
    assert [(p, u) for p, u, _ in entries] == emulator_ranking(emulator, SLUG, period)
    assert {t for _, _, t in entries} <= {"new", "up", "down", "same", "re-entry"}
    assert len(executions) == 1
    first = executions[0]
    assert (first.status, first.period, first.dag_id) == ("success", period, dag_id)
    assert (first.rankings_created, first.rankings_updated, first.entries_written) == (1, 0, 200)
    assert first.tracks_created == track_count == len({u for _, u, _ in entries})
    assert first.api_requests == 2  # two pages of 100, nothing repeated
    assert first.completed_at >= first.started_at

    before = snapshot(engine)
    af.airflow("dags", "test", dag_id, period.isoformat())
    assert snapshot(engine) == before, "re-running a period must not change the warehouse"
    with engine.connect() as conn:
        rerun = conn.execute(select(chart_sync_execution).order_by(chart_sync_execution.c.id.desc())).first()
    assert rerun.status == "success"
    assert (rerun.rankings_created, rerun.rankings_updated, rerun.tracks_created, rerun.tracks_updated) == (0, 0, 0, 0)


def test_dag_run_syncs_a_period_on_sqlite(airflow_sqlite, emulator):
    run_and_check(airflow_sqlite, emulator)


def test_dag_run_syncs_a_period_on_postgres(airflow_postgres, emulator):
    run_and_check(airflow_postgres, emulator)
