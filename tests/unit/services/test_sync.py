"""The sync service against the emulator over real HTTP, into a SQLite chart DB: sync_period (fetch,
then store in one transaction) and sync_run (the decisions of a run, returned as outcomes)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import create_engine, func, insert, select, update

from chartsync.store.migrate import upgrade
from chartsync.store.tables import chart, chart_ranking, chart_ranking_entry, chart_sync_execution, track
from chartsync.core.calendar import Frequency
from chartsync.core.outcomes import Failed, NotPublishedYet, RunRef, Skipped, Synced
from chartsync.core.schedule import ScheduleConfig
from chartsync.services import sync
from chartsync.soundcharts.client import (
    SoundchartsAuthError,
    SoundchartsClient,
    SoundchartsMalformedResponse,
    SoundchartsNotFound,
)
from chartsync.services.sync import sync_period

SLUG = "apple-music-top-100-us-daily"
PERIOD = date.today() - timedelta(days=5)


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


RUN = RunRef(chart_id=1, dag_id="chart_sync__" + SLUG, run_id="manual__test")


def counts(engine) -> dict:
    with engine.connect() as conn:
        return {t.name: conn.execute(select(func.count()).select_from(t)).scalar()
                for t in (chart_ranking, chart_ranking_entry, track, chart_sync_execution)}


def test_sync_writes_ranking_entries_tracks_and_execution(engine, client, emulator_admin):
    result = sync_period(engine, client, RUN, SLUG, PERIOD)
    assert (result.rankings_created, result.entries_written, result.api_requests) == (1, 100, 1)
    assert result.tracks_created == 100
    assert counts(engine) == {"chart_ranking": 1, "chart_ranking_entry": 100, "track": 100, "chart_sync_execution": 1}
    with engine.connect() as conn:
        row = conn.execute(select(chart_sync_execution)).one()
    assert (row.status, row.period, row.tracks_created, row.error) == ("success", PERIOD, 100, None)


def test_resync_is_idempotent_and_repairs_changed_rows(engine, client, emulator_admin):
    sync_period(engine, client, RUN, SLUG, PERIOD)
    again = sync_period(engine, client, RUN, SLUG, PERIOD)
    assert (again.rankings_created, again.rankings_updated, again.tracks_created, again.tracks_updated) == (0, 0, 0, 0)
    assert again.entries_written == 0
    with engine.begin() as conn:  # someone damaged a stored entry and a track name
        conn.execute(update(chart_ranking_entry).where(chart_ranking_entry.c.position == 1).values(streams=-1))
        conn.execute(update(track).where(track.c.id == 1).values(name="wrong"))
    repaired = sync_period(engine, client, RUN, SLUG, PERIOD)
    assert (repaired.rankings_updated, repaired.entries_written, repaired.tracks_updated) == (1, 100, 1)
    assert counts(engine)["chart_ranking_entry"] == 100


def test_malformed_payload_fails_with_a_message_and_writes_no_data(engine, client, emulator_admin):
    emulator_admin.fault(kind="malformed", path_contains="/ranking/")
    with pytest.raises(SoundchartsMalformedResponse):
        sync_period(engine, client, RUN, SLUG, PERIOD)
    c = counts(engine)
    assert (c["chart_ranking"], c["chart_ranking_entry"], c["track"]) == (0, 0, 0)
    with engine.connect() as conn:
        row = conn.execute(select(chart_sync_execution)).one()
    assert row.status == "failed" and "Malformed" in row.error


def test_rate_limit_is_waited_out_using_retry_after(engine, client, emulator_admin):
    emulator_admin.fault(kind="429", count=1, retry_after=1)
    result = sync_period(engine, client, RUN, SLUG, PERIOD)
    assert result.rankings_created == 1
    assert result.api_requests == 2  # the refused call and its retry


def test_server_errors_are_retried(engine, client, emulator_admin):
    emulator_admin.fault(kind="500", count=2)
    assert sync_period(engine, client, RUN, SLUG, PERIOD).rankings_created == 1


def test_persistent_server_errors_fail_and_record(engine, client, emulator_admin):
    from chartsync.soundcharts.client import SoundchartsServerError

    emulator_admin.fault(kind="500")
    with pytest.raises(SoundchartsServerError, match="500 after 3 attempts"):
        sync_period(engine, client, RUN, SLUG, PERIOD)
    assert counts(engine)["chart_ranking"] == 0


def test_unpublished_period_raises_not_found_and_writes_nothing(engine, client, emulator_admin):
    with pytest.raises(SoundchartsNotFound):
        sync_period(engine, client, RUN, SLUG, date.today() + timedelta(days=2))
    assert counts(engine) == {"chart_ranking": 0, "chart_ranking_entry": 0, "track": 0, "chart_sync_execution": 0}


def test_wrong_key_is_an_auth_error_that_does_not_leak_the_key(engine, emulator, monkeypatch, caplog):
    secret = "s3cr3t-key-123"
    monkeypatch.setenv("AIRFLOW_CONN_SOUNDCHARTS_DEFAULT", json.dumps(
        {"conn_type": "http", "host": emulator.url, "login": "soundcharts", "password": secret}))
    with pytest.raises(SoundchartsAuthError) as err:
        sync_period(engine, SoundchartsClient(), RUN, SLUG, PERIOD)
    assert "403" in str(err.value)
    assert secret not in str(err.value) and secret not in caplog.text
    with engine.connect() as conn:
        assert secret not in (conn.execute(select(chart_sync_execution.c.error)).scalar() or "")


# -- sync_run: the outcomes ---------------------------------------------------------------------------
def config(**overrides) -> ScheduleConfig:
    values = dict(schedule_id=1, chart_id=1, slug=SLUG, chart_name="Apple Music US", platform="apple-music",
                  country_code="US", chart_frequency="daily", frequency=Frequency.DAILY, custom_interval_hours=None,
                  cron_expression=None, weekday=None, is_active=True, sync_immediately=False,
                  sync_historical_data=True, fetch_track_metadata=False, history_start=PERIOD - timedelta(days=30),
                  deadline_hours=None, created_on=date.today())
    return ScheduleConfig(**values | overrides)


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
