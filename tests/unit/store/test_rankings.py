"""The ranking page's read side and the coverage strip, on data synced from the emulator."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import create_engine, insert

from chartsync.services import coverage
from chartsync.store import rankings
from chartsync.store.migrate import upgrade
from chartsync.store.tables import chart, chart_expected_period
from chartsync.core.outcomes import RunRef
from chartsync.store.executions import record_failure
from chartsync.core.calendar import Frequency
from chartsync.core.schedule import ScheduleConfig
from chartsync.soundcharts.client import SoundchartsClient
from chartsync.services.sync import sync_period

SLUG = "spotify-top-200-gb-daily"
DAY = date.today() - timedelta(days=6)


@pytest.fixture(scope="module")
def engine(tmp_path_factory, emulator):
    engine = create_engine(f"sqlite:///{tmp_path_factory.mktemp('rank') / 'chart.db'}")
    upgrade(engine)
    with engine.begin() as conn:
        conn.execute(insert(chart).values(id=1, slug=SLUG, name="Spotify GB", platform="spotify", frequency="daily",
                                          created_at=datetime.now(UTC)))
    mp = pytest.MonkeyPatch()
    mp.setenv("AIRFLOW_CONN_SOUNDCHARTS_DEFAULT", json.dumps(
        {"conn_type": "http", "host": emulator.url, "login": "soundcharts", "password": "soundcharts"}))
    client = SoundchartsClient()
    run = RunRef(1, "chart_sync__" + SLUG, "manual__t")
    for day in (DAY - timedelta(days=1), DAY, DAY + timedelta(days=2)):
        sync_period(engine, client, run, SLUG, day)
    mp.undo()
    return engine


def test_page_of_a_period_with_navigation_and_trend_counts(engine):
    page = rankings.ranking_page(engine, 1, DAY)
    assert page.period == DAY and page.entry_count == 200
    assert page.previous_period == DAY - timedelta(days=1)
    assert page.next_period == DAY + timedelta(days=2)  # the next STORED period
    assert sum(page.trend_counts.values()) == 200
    assert page.trend_counts["up"] > 0 and page.trend_counts["down"] > 0
    assert [e.position for e in page.entries] == list(range(1, 101))
    assert page.pages == 2
    second = rankings.ranking_page(engine, 1, DAY, page=2)
    assert [e.position for e in second.entries] == list(range(101, 201))


def test_default_is_the_newest_period(engine):
    assert rankings.ranking_page(engine, 1).period == DAY + timedelta(days=2)


def test_filter_sort_and_search(engine):
    new = rankings.ranking_page(engine, 1, DAY, trend="new")
    assert new.matching == new.trend_counts["new"]
    assert {e.trend for e in new.entries} <= {"new"}
    by_streams = rankings.ranking_page(engine, 1, DAY, sort="streams", descending=True)
    streams = [e.streams for e in by_streams.entries]
    assert streams == sorted(streams, reverse=True)
    target = by_streams.entries[10]
    found = rankings.ranking_page(engine, 1, DAY, search=target.track_name[:12].upper())
    assert target.song_uuid in {e.song_uuid for e in found.entries}
    assert found.matching < 200
    with pytest.raises(ValueError):
        rankings.ranking_page(engine, 1, DAY, sort="nonsense")


def test_unknown_period_is_not_found(engine):
    with pytest.raises(rankings.RankingNotFound):
        rankings.ranking_page(engine, 1, DAY - timedelta(days=100))


def test_coverage_strip_marks_each_period(engine):
    today = date.today()
    config = ScheduleConfig(
        schedule_id=1, chart_id=1, slug=SLUG, chart_name="x", platform="spotify", country_code="GB",
        chart_frequency="daily", frequency=Frequency.DAILY, custom_interval_hours=None, cron_expression=None,
        weekday=None, is_active=True, sync_immediately=True, sync_historical_data=True, fetch_track_metadata=True,
        history_start=DAY - timedelta(days=3), deadline_hours=None, created_on=today)
    failed_day, skipped_day = DAY + timedelta(days=1), DAY - timedelta(days=2)
    record_failure(engine, RunRef(1, "d", "r"), failed_day, datetime.now(UTC), "SoundchartsServerError: 500")
    with engine.begin() as conn:
        conn.execute(insert(chart_expected_period), [
            {"chart_id": 1, "period": d, "in_calendar": True, "in_api": d != skipped_day, "expected": d != skipped_day,
             "refreshed_at": datetime.now(UTC)} for d in (skipped_day, DAY)])
    cells = {c.period: c for c in coverage.coverage_strip(engine, config, today=today)}
    assert len(cells) in (365, 366)
    assert cells[DAY].status == "synced"
    assert cells[failed_day].status == "failed" and "500" in cells[failed_day].detail
    assert cells[skipped_day].status == "skipped"
    assert cells[DAY - timedelta(days=3)].status == "missing"
    assert cells[DAY - timedelta(days=30)].status == "outside-window"
    assert cells[today].status == "not-yet-due"
