"""services.quota against the emulator into a SQLite chart DB: what a sync try, the chart import and the
usage endpoint record; the summary and the estimate read from it; a failure to record never fails a sync."""

from __future__ import annotations

import json
import logging
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import insert, select

from chartsync.core.calendar import Frequency
from chartsync.core.outcomes import RunRef, Synced
from chartsync.core.quota import QuotaReading
from chartsync.core.schedule import ScheduleConfig
from chartsync.services import audience, budget, charts, quota, sync, track_metadata
from chartsync.soundcharts import client as client_module
from chartsync.soundcharts.client import SoundchartsClient, SoundchartsServerError
from chartsync.store import quota as quota_store
from chartsync.store.tables import chart, chart_ranking, chart_sync_quota_reading, chart_sync_schedule, track
from conftest import migrated_sqlite

SLUG = "apple-music-top-100-us-daily"
PERIOD = date.today() - timedelta(days=5)
RUN = RunRef(chart_id=1, dag_id="chart_sync__" + SLUG, run_id="manual__test")
TODAY = datetime.now(UTC).date()


@pytest.fixture
def engine(tmp_path):
    engine = migrated_sqlite(tmp_path / "chart.db")
    with engine.begin() as conn:
        conn.execute(insert(chart).values(id=1, slug=SLUG, name="Apple Music US", platform="apple-music",
                                          frequency="daily", max_results=100, created_at=datetime.now(UTC)))
    return engine


@pytest.fixture
def client(emulator, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_SOUNDCHARTS_DEFAULT", json.dumps(
        {"conn_type": "http", "host": emulator.url, "login": "soundcharts", "password": "soundcharts"}))
    monkeypatch.setattr(client_module.time, "sleep", lambda seconds: None)
    return SoundchartsClient(max_attempts=2)


def config() -> ScheduleConfig:
    return ScheduleConfig(schedule_id=1, chart_id=1, slug=SLUG, chart_name="Apple Music US", platform="apple-music",
                          country_code="US", chart_frequency="daily", frequency=Frequency.DAILY,
                          custom_interval_hours=None, cron_expression=None, weekday=None, is_active=True,
                          sync_immediately=False, sync_historical_data=True, fetch_track_metadata=False,
                          history_start=PERIOD - timedelta(days=30), deadline_hours=None, created_on=date.today())


def test_a_sync_try_records_its_calls_and_the_quota_last_seen(engine, client, emulator_admin):
    assert isinstance(sync.sync_run(engine, client, config(), RUN, PERIOD), Synced)
    assert quota_store.spent_by_chart(engine, TODAY) == {1: client.request_count} and client.request_count == 1
    assert quota_store.latest_reading(engine).remaining == client.quota.remaining < 1_000_000


def test_a_failed_sync_try_records_its_calls_too(engine, client, emulator_admin):
    emulator_admin.fault(kind="500")
    with pytest.raises(SoundchartsServerError):
        sync.sync_run(engine, client, config(), RUN, PERIOD)
    assert quota_store.spent_by_chart(engine, TODAY) == {1: 2}  # both attempts


def test_a_failure_to_record_never_fails_the_sync(engine, client, emulator_admin, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("chart DB gone")

    monkeypatch.setattr(quota_store, "record", broken)
    with caplog.at_level(logging.WARNING, logger="chartsync.services.quota"):
        assert isinstance(sync.sync_run(engine, client, config(), RUN, PERIOD), Synced)
    assert "could not record 1 calls (chart 1)" in caplog.text


def test_the_chart_import_records_calls_tied_to_no_chart(engine, client, emulator_admin):
    charts.import_charts(engine, client, "deezer")
    assert quota_store.spent_by_chart(engine, TODAY) == {None: client.request_count}


def test_refresh_reads_the_usage_endpoint_and_stores_the_reading_as_usage(engine, client, emulator_admin):
    reading = quota.refresh(engine, client)
    assert reading.remaining == 1_000_000  # the emulator's reset quota: the usage endpoint spent none
    with engine.connect() as conn:
        row = conn.execute(select(chart_sync_quota_reading)).one()
    assert (row.remaining, row.source) == (1_000_000, "usage") and row.details["object"]["quota"]
    assert emulator_admin.requests()["total"] == 1


def test_record_takes_a_reading_or_a_client_without_one(engine):
    seen = datetime(2026, 3, 1, 6, tzinfo=UTC)
    assert quota.record(engine, QuotaReading(321, seen, {}), calls=2) is True
    assert quota.record(engine, SoundchartsClient(), chart_id=1, calls=3) is True  # no reading yet: calls only
    assert quota_store.latest_reading(engine).remaining == 321
    assert quota_store.spent_by_chart(engine, TODAY) == {1: 3}


def test_the_summary_adds_up_the_calls_and_projects_the_run_out_date(engine, monkeypatch):
    monkeypatch.delenv("CHARTSYNC_QUOTA_RESERVE", raising=False)
    now = datetime(2026, 3, 10, 12, tzinfo=UTC)
    quota_store.record_reading(engine, QuotaReading(5_000, now - timedelta(hours=1), {}), "usage")
    for days_ago in range(10):  # 100 calls a day for the last 10 days, today included
        quota_store.add_calls(engine, 1, 60, now.date() - timedelta(days=days_ago))
        quota_store.add_calls(engine, None, 40, now.date() - timedelta(days=days_ago))
    quota_store.add_calls(engine, 1, 9_999, now.date() - timedelta(days=40))  # outside the window
    summary = quota.summary(engine, now)
    assert (summary.remaining, summary.spent_24h, summary.spent_30d) == (5_000, 100, 1_000)
    assert summary.burn_per_day == 100.0 and summary.runs_out_on == date(2026, 4, 29)
    assert summary.reserve == 1_000 and summary.as_dict()["runs_out_on"] == "2026-04-29"


def test_the_estimate_uses_the_charts_size_its_rankings_or_two_pages(engine, monkeypatch):
    monkeypatch.setenv("CHARTSYNC_QUOTA_RESERVE", "100")
    assert budget.estimate(engine, {1: 30}).calls == 30  # max_results 100: one page a period
    with engine.begin() as conn:
        conn.execute(insert(chart).values(id=2, slug="sized-by-rankings", name="x", platform="deezer",
                                          created_at=datetime.now(UTC)))
        conn.execute(insert(chart).values(id=3, slug="unknown-size", name="y", platform="deezer",
                                          created_at=datetime.now(UTC)))
        conn.execute(insert(chart_ranking).values(chart_id=2, period=PERIOD, ranking_date="x", entry_count=250,
                                                  fetched_at=datetime.now(UTC)))
    assert budget.estimate(engine, {2: 10}).calls == 30
    unknown = budget.estimate(engine, {3: 10})
    assert unknown.calls == 20 and unknown.remaining is None and unknown.warning is None
    quota_store.record_reading(engine, QuotaReading(110, datetime.now(UTC), {}), "usage")
    low = budget.estimate(engine, {3: 10})
    assert (low.leaves, low.reserve) == (90, 100) and "below the reserve of 100" in low.warning


@pytest.fixture
def song(engine, client):
    """A charted song of the emulator, stored as a track."""
    entry = client.ranking("spotify-top-200-global-daily").entries[0]
    client.request_count = 0
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(insert(track).values(song_uuid=entry.song_uuid, name=entry.song_name,
                                          credit_name=entry.credit_name, created_at=now, updated_at=now))
    return entry.song_uuid


def test_an_audience_refresh_records_its_calls_tied_to_no_chart(engine, client, song):
    result = audience.refresh_song(engine, client, song)
    assert result.api_requests >= 1
    assert quota_store.spent_by_chart(engine, TODAY) == {None: result.api_requests}


def test_track_metadata_records_its_calls_tied_to_no_chart(engine, client, emulator_admin):
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(insert(chart_sync_schedule).values(chart_id=1, sync_frequency="daily", fetch_track_metadata=True,
                                                        history_start=PERIOD, created_at=now, updated_at=now))
    sync.sync_period(engine, client, RUN, SLUG, PERIOD)  # stores 100 tracks; sync_period itself records nothing
    assert quota_store.spent_by_chart(engine, TODAY) == {}
    run = track_metadata.refresh_metadata(engine, client, batch_size=40)
    assert run.api_requests == 100
    assert quota_store.spent_by_chart(engine, TODAY) == {None: 100}  # three batches added up
