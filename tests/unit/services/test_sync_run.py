"""sync_run: the decisions of a sync run, returned as outcomes (no Airflow), against the emulator."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import create_engine, insert, select

from chartsync.core.calendar import Frequency
from chartsync.core.outcomes import Failed, NotPublishedYet, RunRef, Skipped, Synced
from chartsync.core.schedule import ScheduleConfig
from chartsync.services import sync
from chartsync.soundcharts.client import SoundchartsClient
from chartsync.store.migrate import upgrade
from chartsync.store.tables import chart, chart_ranking, chart_sync_execution

SLUG = "apple-music-top-100-us-daily"
PERIOD = date.today() - timedelta(days=5)
RUN = RunRef(chart_id=1, dag_id="chart_sync__" + SLUG, run_id="scheduled__test")


def config(**overrides) -> ScheduleConfig:
    values = dict(schedule_id=1, chart_id=1, slug=SLUG, chart_name="Apple Music US", platform="apple-music",
                  country_code="US", chart_frequency="daily", frequency=Frequency.DAILY, custom_interval_hours=None,
                  cron_expression=None, weekday=None, is_active=True, sync_immediately=False,
                  sync_historical_data=True, fetch_track_metadata=False, history_start=PERIOD - timedelta(days=30),
                  deadline_hours=None, created_on=date.today())
    return ScheduleConfig(**values | overrides)


@pytest.fixture
def engine(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'chart.db'}")
    upgrade(engine)
    with engine.begin() as conn:
        conn.execute(insert(chart).values(id=1, slug=SLUG, name="Apple Music US", platform="apple-music",
                                          frequency="daily", created_at=datetime.now(UTC)))
    return engine


@pytest.fixture
def client(emulator, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_SOUNDCHARTS_DEFAULT", json.dumps(
        {"conn_type": "http", "host": emulator.url, "login": "soundcharts", "password": "soundcharts"}))
    return SoundchartsClient(max_attempts=3)


def stored(engine) -> list[date]:
    with engine.connect() as conn:
        return sorted(conn.execute(select(chart_ranking.c.period)).scalars())


def test_a_published_period_is_synced(engine, client, emulator_admin):
    outcome = sync.sync_run(engine, client, config(), RUN, PERIOD, run_type="scheduled")
    assert isinstance(outcome, Synced) and outcome.result.period == PERIOD
    assert [r.period for r in outcome.results] == [PERIOD]
    assert stored(engine) == [PERIOD]


def test_an_unpublished_period_waits_until_its_publication_window_ends(engine, client, emulator_admin):
    emulator_admin.fault(kind="unpublished", date=PERIOD.isoformat())
    just_after = datetime.combine(PERIOD + timedelta(days=1), datetime.min.time(), UTC) + timedelta(hours=1)
    outcome = sync.sync_run(engine, client, config(), RUN, PERIOD, now=just_after)
    assert isinstance(outcome, NotPublishedYet)
    assert outcome.retry_at == just_after + timedelta(minutes=30)  # POKE_INTERVAL
    assert outcome.until == just_after - timedelta(hours=1) + timedelta(hours=36)  # the daily publication wait
    assert stored(engine) == []


def test_a_period_the_api_skipped_is_recorded_as_skipped(engine, client, emulator_admin):
    emulator_admin.fault(kind="unpublished", date=PERIOD.isoformat())
    outcome = sync.sync_run(engine, client, config(), RUN, PERIOD, now=datetime.now(UTC))
    assert isinstance(outcome, Skipped) and "skipped period" in outcome.message
    with engine.connect() as conn:
        assert conn.execute(select(chart_sync_execution.c.status)).scalars().all() == ["skipped"]
    assert stored(engine) == []


def test_nothing_published_at_all_is_a_failure_not_worth_a_retry(engine, client, emulator_admin):
    emulator_admin.fault(kind="unpublished", path_contains=SLUG)  # hides the newest ranking
    outcome = sync.sync_run(engine, client, config(), RUN, None)
    assert isinstance(outcome, Failed) and "no published ranking" in outcome.message


def test_the_first_catchup_run_pulls_the_newest_period_forward(engine, client, emulator_admin):
    first = PERIOD - timedelta(days=30)
    immediate = config(sync_immediately=True, history_start=first)
    outcome = sync.sync_run(engine, client, immediate, RUN, first, run_type="scheduled")
    assert isinstance(outcome, Synced) and len(outcome.results) == 2
    assert outcome.results[0].period > PERIOD and outcome.result.period == first
    assert sync.pulls_newest_first(immediate, first, "backfill") is False


def test_period_for_run_is_the_logical_dates_period_for_calendar_schedules():
    logical = datetime(2026, 3, 4, tzinfo=UTC)
    assert sync.period_for_run(config(), logical, logical + timedelta(days=1)) == date(2026, 3, 4)
    weekly = config(frequency=Frequency.WEEKLY, weekday=4)
    assert sync.period_for_run(weekly, logical, logical + timedelta(days=7)) == date(2026, 2, 27)
    assert sync.period_for_run(config(), None, None) is None
