"""The admin pages' read services (chartsync.store.pages) on a SQLite chart DB with hand-made rows."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import insert

from chartsync.seam import orchestration
from chartsync.core.paging import PageRequest
from chartsync.services import schedules
from chartsync.store import pages
from chartsync.store.tables import chart, chart_ranking, chart_sync_execution, chart_sync_schedule
from conftest import migrated_sqlite

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)


def _execution(chart_id: int, n: int, status: str, started: datetime, duration: float) -> dict:
    return {"chart_id": chart_id, "dag_id": f"chart_sync__c{chart_id}", "run_id": f"r{chart_id}-{n}",
            "status": status, "started_at": started, "completed_at": started + timedelta(seconds=duration),
            "duration_seconds": duration}


@pytest.fixture
def engine(tmp_path, monkeypatch):
    """Charts 1-6: 1 active and fresh, 2 active and never synced for 40 days (overdue), 3 inactive,
    4 active with a poor success rate, 5 and 6 not scheduled."""
    engine = migrated_sqlite(tmp_path / 'chart.db')
    monkeypatch.setattr(orchestration, "dag_states", lambda dag_ids: {})  # no Airflow metadata DB here
    names = {1: "Alpha Daily", 2: "Beta Weekly", 3: "Gamma Daily", 4: "Delta Daily", 5: "Epsilon Daily",
             6: "Zeta Monthly"}
    with engine.begin() as conn:
        for i, name in names.items():
            conn.execute(insert(chart).values(id=i, slug=f"c{i}", name=name, platform="deezer" if i == 4 else "spotify",
                                              frequency="weekly" if i == 2 else "monthly" if i == 6 else "daily",
                                              created_at=NOW))
        for i, active in ((1, True), (2, True), (3, False), (4, True)):
            conn.execute(insert(chart_sync_schedule).values(
                id=10 + i, chart_id=i, is_active=active, sync_frequency="weekly" if i == 2 else "daily",
                history_start=date(2025, 6, 15), created_at=NOW - timedelta(days=40), updated_at=NOW))
        rows = [_execution(1, n, "success", NOW - timedelta(days=n, hours=2), 10 + n) for n in range(5)]
        rows += [_execution(4, n, "failed" if n else "success", NOW - timedelta(hours=3 + n), 40) for n in range(4)]
        rows.append(_execution(1, 99, "skipped", NOW - timedelta(days=1, hours=5), 1))
        conn.execute(insert(chart_sync_execution), rows)
        conn.execute(insert(chart_ranking), [  # chart 1: its first 100 periods stored
            {"chart_id": 1, "period": date(2025, 6, 15) + timedelta(days=n), "ranking_date": "x", "entry_count": 1,
             "fetched_at": NOW} for n in range(100)])
    return engine


def test_catalogue_status_of_every_chart_and_filters(engine):
    page = pages.chart_catalogue(engine, now=NOW)
    assert page.total == 6
    assert {r.slug: r.status for r in page.items} == {
        "c1": "active", "c2": "overdue", "c3": "inactive", "c4": "active", "c5": "not-scheduled",
        "c6": "not-scheduled"}
    assert [r.slug for r in pages.chart_catalogue(engine, status="not-scheduled", now=NOW).items] == ["c5", "c6"]
    assert [r.slug for r in pages.chart_catalogue(engine, search="ALPHA", now=NOW).items] == ["c1"]
    assert [r.slug for r in pages.chart_catalogue(engine, platform="deezer", now=NOW).items] == ["c4"]
    # a scheduled chart by its schedule's frequency, an unscheduled one by its own
    assert [r.slug for r in pages.chart_catalogue(engine, frequency="monthly", now=NOW).items] == ["c6"]
    second = pages.chart_catalogue(engine, paging=PageRequest.number(2, 4), now=NOW)
    assert (second.total, second.pages, [r.slug for r in second.items]) == (6, 2, ["c5", "c6"])
    with pytest.raises(ValueError):
        pages.chart_catalogue(engine, status="bogus")


def test_schedule_table_sorts_by_statistics_and_filters_by_status(engine):
    by_rate = schedules.schedule_table(engine, sort="success_rate", descending=True, now=NOW)
    assert [s["chart"]["slug"] for s in by_rate.items] == ["c1", "c4", "c2", "c3"]  # never executed: last
    c1 = by_rate.items[0]["coverage"]  # live: the stored rankings of the window up to yesterday
    assert c1["stored_periods"] == 100 and c1["window_start"] == date(2025, 6, 15)
    assert c1["coverage_percent"] == round(100 * 100 / c1["expected_periods"], 2)
    assert by_rate.items[1]["stats"].success_rate == 0.25
    by_count = schedules.schedule_table(engine, sort="executions", descending=True, now=NOW)
    assert [s["chart"]["slug"] for s in by_count.items] == ["c1", "c4", "c2", "c3"]
    by_coverage = schedules.schedule_table(engine, sort="coverage", descending=True, now=NOW)
    assert [s["chart"]["slug"] for s in by_coverage.items][0] == "c1"
    overdue = schedules.schedule_table(engine, status="overdue", now=NOW)
    assert (overdue.total, [s["status"] for s in overdue.items]) == (1, ["overdue"])
    assert schedules.schedule_table(engine, search="delta", now=NOW).items[0]["chart"]["slug"] == "c4"
    with pytest.raises(ValueError):
        schedules.schedule_table(engine, sort="nope")


def test_daily_stats_fill_every_day(engine):
    days = pages.daily_stats(engine, 7, now=NOW)
    assert [d.day for d in days] == [NOW.date() - timedelta(days=6 - i) for i in range(7)]
    today = days[-1]
    assert (today.executions, today.successful, today.failed) == (5, 2, 3)
    assert today.success_rate == 0.4 and today.average_duration_seconds == 34
    yesterday = days[-2]
    assert (yesterday.successful, yesterday.skipped, yesterday.success_rate) == (1, 1, 1.0)
    assert days[0].executions == 0 and days[0].success_rate is None


def test_freshness_and_slowest(engine):
    stalest = pages.stalest_schedules(engine, now=NOW)
    assert [f.slug for f in stalest] == ["c2", "c4", "c1"]  # never synced first, inactive c3 left out
    assert stalest[0].value is None and stalest[1].value > stalest[2].value
    assert dict(pages.freshness_distribution(engine, now=NOW)) == {
        "under 1 day": 2, "1-2 days": 0, "2-7 days": 0, "7-31 days": 0, "over 31 days": 0, "never synced": 1}
    slowest = pages.slowest_charts(engine, days=30, now=NOW)
    assert [(f.slug, f.value, f.executions) for f in slowest] == [("c4", 40.0, 4), ("c1", 10.167, 6)]
