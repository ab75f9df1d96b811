"""On the real scheduler: holes in a synced chart are found exactly, healed by one backfill, and a
week the API skipped is not a gap."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta

import pytest
import requests
from sqlalchemy import delete, func, insert, select, update

from chartsync.store.tables import (
    chart,
    chart_ranking,
    chart_ranking_entry,
    chart_sync_coverage,
    chart_sync_gap,
    chart_sync_schedule,
    track,
)
from conftest import start_airflow, stop_airflow, wait_for

pytestmark = pytest.mark.integration

DAILY = "deezer-top-100-gb-daily"
HOLIDAY = "deezer-top-100-global-weekly-holiday"
WINDOW = 10


def api(services, token, path, **params):
    r = requests.get(f"{services.api_url}/api/v2{path}", params=params,
                     headers={"Authorization": f"Bearer {token}"}, timeout=10)
    r.raise_for_status()
    return r.json()


def chart_id(engine, slug):
    with engine.connect() as conn:
        return conn.execute(select(chart.c.id).where(chart.c.slug == slug)).scalar_one()


def stored_periods(engine, slug):
    with engine.connect() as conn:
        return sorted(conn.execute(select(chart_ranking.c.period).where(
            chart_ranking.c.chart_id == chart_id(engine, slug))).scalars())


def test_audit_finds_exactly_the_deleted_ranges_and_heal_closes_them(airflow_sqlite, emulator):
    af = airflow_sqlite
    af.chartsync("charts", "import", "--platform", "deezer")
    af.chartsync("schedules", "add", DAILY)
    af.chartsync("schedules", "add", HOLIDAY, "--no-history")
    engine = af.engine()
    start = date.today() - timedelta(days=WINDOW)
    holiday_id = chart_id(engine, HOLIDAY)
    with engine.begin() as conn:
        conn.execute(update(chart_sync_schedule).where(chart_sync_schedule.c.chart_id == chart_id(engine, DAILY))
                     .values(history_start=start))
        # the holiday chart's window reaches back over Christmas 2025; its published weeks are stored
        conn.execute(update(chart_sync_schedule).where(chart_sync_schedule.c.chart_id == holiday_id)
                     .values(created_at=datetime(2025, 12, 1, tzinfo=UTC)))
    published = requests.get(f"{emulator.url}/api/v2/chart/song/{HOLIDAY}/available-rankings",
                              params={"limit": 100}, headers={"x-app-id": "soundcharts", "x-api-key": "soundcharts"},
                              timeout=10).json()["items"]
    weeks = [date.fromisoformat(d[:10]) for d in published if d[:10] >= "2025-12-01"]
    assert date(2025, 12, 22) not in weeks and date(2025, 12, 15) in weeks and date(2025, 12, 29) in weeks
    with engine.begin() as conn:
        conn.execute(insert(chart_ranking), [
            {"chart_id": holiday_id, "period": d, "ranking_date": f"{d}T00:00:00+00:00", "entry_count": 0,
             "fetched_at": datetime.now(UTC)} for d in weeks])

    services = start_airflow(af)
    try:
        token = services.token()
        daily_dag = f"chart_sync__{DAILY}"

        def synced():
            runs = api(services, token, f"/dags/{daily_dag}/dagRuns", limit=100)["dag_runs"] \
                if DAILY in str(api(services, token, "/dags", limit=100)) else []
            assert not [r for r in runs if r["state"] == "failed"], runs
            return len(runs) >= WINDOW and all(r["state"] == "success" for r in runs)

        wait_for(synced, 300, "the catchup of the daily chart", interval=2)
        assert stored_periods(engine, DAILY) == [start + timedelta(days=i) for i in range(WINDOW)]

        rng = random.Random(7)
        singles = rng.sample(range(0, 4), 1)
        deleted = sorted({start + timedelta(days=i) for i in singles + [6, 7]})  # one lone day, one pair
        with engine.begin() as conn:
            ids = select(chart_ranking.c.id).where(chart_ranking.c.chart_id == chart_id(engine, DAILY),
                                                   chart_ranking.c.period.in_(deleted))
            conn.execute(delete(chart_ranking_entry).where(chart_ranking_entry.c.ranking_id.in_(ids)))
            conn.execute(delete(chart_ranking).where(chart_ranking.c.id.in_(ids)))

        af.chartsync("gaps", "audit")
        with engine.connect() as conn:
            found = [(r.start_period, r.end_period, r.period_count) for r in conn.execute(
                select(chart_sync_gap).order_by(chart_sync_gap.c.start_period))]
            coverage = {r.chart_id: r for r in conn.execute(select(chart_sync_coverage))}
        lone = start + timedelta(days=singles[0])
        assert found == [(lone, lone, 1), (start + timedelta(days=6), start + timedelta(days=7), 2)]
        assert coverage[chart_id(engine, DAILY)].coverage_percent == pytest.approx(100 * (WINDOW - 3) / WINDOW)
        assert coverage[holiday_id].coverage_percent == 100.0  # the skipped week is not expected
        assert "2025-12-22" in coverage[holiday_id].calendar_only
        listing = af.chartsync("gaps", "list").stdout
        assert f"--dag-id {daily_dag} --from-date {lone} --to-date {lone}" in listing

        first = af.chartsync("gaps", "heal", "--all").stdout
        assert f"{DAILY}: created: " in first and "3 missing periods in 2 range(s)" in first
        again = af.chartsync("gaps", "heal", DAILY).stdout
        assert f"{DAILY}: already-running" in again
        backfills = api(services, token, "/backfills", dag_id=daily_dag)["backfills"]
        assert len(backfills) == 1

        def healed():
            b = api(services, token, f"/backfills/{backfills[0]['id']}")
            return b["completed_at"] is not None

        wait_for(healed, 300, "the healing backfill", interval=2)
        runs = api(services, token, f"/dags/{daily_dag}/dagRuns", limit=100)["dag_runs"]
        assert all(r["state"] == "success" for r in runs), runs
    finally:
        stop_airflow(services)

    af.airflow("dags", "test", "chart_sync_gap_audit")  # the daily audit DAG, run for real
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(chart_sync_gap)).scalar() == 0
        cov = conn.execute(select(chart_sync_coverage).where(
            chart_sync_coverage.c.chart_id == chart_id(engine, DAILY))).one()
        per_ranking = conn.execute(
            select(chart_ranking.c.entry_count, func.count(chart_ranking_entry.c.id))
            .join(chart_ranking_entry, chart_ranking_entry.c.ranking_id == chart_ranking.c.id)
            .where(chart_ranking.c.chart_id == chart_id(engine, DAILY)).group_by(chart_ranking.c.id)).all()
        uuids = conn.execute(select(func.count(track.c.id), func.count(func.distinct(track.c.song_uuid)))).one()
    assert cov.coverage_percent == 100.0
    assert stored_periods(engine, DAILY) == [start + timedelta(days=i) for i in range(WINDOW)]
    assert all(count == expected == 100 for expected, count in per_ranking)
    assert uuids[0] == uuids[1]
    assert "nothing-to-heal" in af.chartsync("gaps", "heal", DAILY).stdout
