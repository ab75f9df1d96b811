"""sync_period against the emulator over real HTTP, into a SQLite chart DB."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest
from sqlalchemy import create_engine, func, insert, select, update

from chartsync.store.migrate import upgrade
from chartsync.store.tables import chart, chart_ranking, chart_ranking_entry, chart_sync_execution, track
from chartsync.core.outcomes import RunRef
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
    from datetime import UTC, datetime

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
