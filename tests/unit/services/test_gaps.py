"""Expected periods, gap ranges and coverage: pure parts with plain values, SQL on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import create_engine, insert, select

from chartsync.services import gaps
from chartsync.store.migrate import upgrade
from chartsync.store.tables import chart, chart_expected_period, chart_ranking, chart_sync_coverage, chart_sync_schedule
from chartsync.core.calendar import Frequency
from chartsync.core.schedule import ScheduleConfig

TODAY = date(2026, 11, 24)


def config(**over) -> ScheduleConfig:
    values = dict(schedule_id=1, chart_id=1, slug="c", chart_name="C", platform="deezer", country_code=None,
                  chart_frequency="weekly", frequency=Frequency.WEEKLY, custom_interval_hours=None,
                  cron_expression=None, weekday=0, is_active=True, sync_immediately=True,
                  sync_historical_data=True, fetch_track_metadata=True, history_start=date(2025, 11, 24),
                  deadline_hours=None, created_on=date(2026, 11, 24))
    values.update(over)
    return ScheduleConfig(**values)


def test_api_list_wins_and_the_difference_is_reported():
    cfg = config()
    first, last = gaps.history_window(cfg, TODAY)
    assert (first, last) == (date(2025, 11, 24), date(2026, 11, 16))
    mondays = [first + timedelta(weeks=i) for i in range(52)]
    holiday = date(2025, 12, 22)
    api = [f"{d.isoformat()}T00:00:00+00:00" for d in mondays if d != holiday]
    sources = gaps.period_sources(cfg, api, TODAY)
    assert len(sources.calendar) == 52
    assert holiday not in sources.expected and len(sources.expected) == 51
    assert sources.calendar_only == [holiday]
    assert sources.api_only == []


def test_calendar_is_used_when_the_api_cannot_be_asked():
    sources = gaps.period_sources(config(), None, TODAY)
    assert sources.expected == sources.calendar
    assert sources.calendar_only == [] and sources.api_only == []


def test_window_without_history_starts_at_creation():
    cfg = config(frequency=Frequency.DAILY, chart_frequency="daily", weekday=None, sync_historical_data=False,
                 created_on=date(2026, 11, 20))
    assert gaps.history_window(cfg, TODAY) == (date(2026, 11, 20), date(2026, 11, 23))


def test_backfill_command_closes_the_range():
    gap = gaps.GapRange(1, "spotify-top-200-global-daily", date(2026, 1, 3), date(2026, 1, 5), 3)
    assert gap.backfill_command == ("airflow backfill create --dag-id chart_sync__spotify-top-200-global-daily "
                                    "--from-date 2026-01-03 --to-date 2026-01-05 --reprocess-behavior completed")


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request, tmp_path):
    if request.param == "sqlite":
        engine = create_engine(f"sqlite:///{tmp_path / 'chart.db'}")
    else:
        pg = request.getfixturevalue("postgres")
        engine = create_engine(pg.url(pg.create_database("gaps_unit")))
    upgrade(engine)
    yield engine
    engine.dispose()


def seed(engine, slug: str, chart_id: int, expected: list[date], stored: list[date], active: bool = True):
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(insert(chart).values(id=chart_id, slug=slug, name=slug, platform="x", created_at=now))
        conn.execute(insert(chart_sync_schedule).values(
            chart_id=chart_id, is_active=active, sync_frequency="daily", history_start=expected[0],
            created_at=now, updated_at=now))
        conn.execute(insert(chart_expected_period), [
            {"chart_id": chart_id, "period": d, "in_calendar": True, "in_api": True, "expected": True,
             "refreshed_at": now} for d in expected])
        if stored:
            conn.execute(insert(chart_ranking), [
                {"chart_id": chart_id, "period": d, "ranking_date": d.isoformat(), "entry_count": 1,
                 "fetched_at": now} for d in stored])


def test_gaps_are_merged_into_ranges_for_all_charts_at_once(engine):
    days = [date(2026, 10, 1) + timedelta(days=i) for i in range(30)]
    holes = {days[0], days[5], days[6], days[7], days[20], days[29]}
    seed(engine, "a", 1, days, [d for d in days if d not in holes])
    weeks = [date(2026, 9, 7) + timedelta(weeks=i) for i in range(8)]
    seed(engine, "b", 2, weeks, weeks[:3] + weeks[5:])  # two weekly periods missing: one range
    seed(engine, "c", 3, days, days)  # complete
    seed(engine, "d", 4, days, [], active=False)  # inactive: not audited

    found = gaps.detect_gaps(engine, today=TODAY)
    assert [(g.slug, g.start, g.end, g.periods) for g in found] == [
        ("a", days[0], days[0], 1),
        ("a", days[5], days[7], 3),
        ("a", days[20], days[20], 1),
        ("a", days[29], days[29], 1),
        ("b", weeks[3], weeks[4], 2),
    ]
    with engine.connect() as conn:
        coverage = {r.chart_id: r for r in conn.execute(select(chart_sync_coverage))}
    assert set(coverage) == {1, 2, 3}
    assert coverage[1].expected_periods == 30 and coverage[1].stored_periods == 24
    assert coverage[1].coverage_percent == 80.0
    assert coverage[3].coverage_percent == 100.0
    assert gaps.list_gaps(engine, slug="b")[0].periods == 2


def test_periods_not_yet_due_are_not_gaps(engine):
    days = [TODAY - timedelta(days=2) + timedelta(days=i) for i in range(5)]
    seed(engine, "a", 1, days, days[:1])
    found = gaps.detect_gaps(engine, today=TODAY)
    assert [(g.start, g.end) for g in found] == [(days[1], days[2])]
