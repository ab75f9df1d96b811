"""Waiting for the Soundcharts quota, against the emulator's quota mode into a chart DB: a quota 429 makes the
period wait (no failed row, no retry), history waits below the reserve while the newest period goes on, the
wait's row is replaced by the try's success, and each quota episode raises one "exhausted" and one "restored"
alert, also when two callers race (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import threading
from datetime import UTC, date, datetime, timedelta

import pytest
import requests
from sqlalchemy import create_engine, insert, select

from chartsync import settings
from chartsync.core.alerts import QUOTA_EXHAUSTED, QUOTA_RESTORED
from chartsync.core.calendar import Frequency
from chartsync.core.outcomes import (
    BELOW_RESERVE,
    EXHAUSTED,
    FAILED,
    SUCCESS,
    WAITING_FOR_QUOTA,
    RunRef,
    Synced,
    WaitingForQuota,
)
from chartsync.core.quota import QuotaReading
from chartsync.core.schedule import ScheduleConfig
from chartsync.services import alerts, sync
from chartsync.soundcharts import client as client_module
from chartsync.soundcharts.client import SoundchartsClient, SoundchartsRateLimited
from chartsync.store import quota as quota_store
from chartsync.store.engine import engine_for_url
from chartsync.store.migrate import upgrade
from chartsync.store.tables import chart, chart_sync_alert, chart_sync_execution, chart_sync_quota_episode
from conftest import migrated_sqlite

SLUG = "apple-music-top-100-us-daily"
TODAY = datetime.now(UTC).date()
NEWEST = TODAY - timedelta(days=1)  # a daily chart's newest complete period
HISTORY = TODAY - timedelta(days=5)
DAG_ID = "chart_sync__" + SLUG


def run(run_id: str, try_number: int = 1) -> RunRef:
    return RunRef(chart_id=1, dag_id=DAG_ID, run_id=run_id, try_number=try_number)


def config() -> ScheduleConfig:
    return ScheduleConfig(schedule_id=1, chart_id=1, slug=SLUG, chart_name="Apple Music US", platform="apple-music",
                          country_code="US", chart_frequency="daily", frequency=Frequency.DAILY,
                          custom_interval_hours=None, cron_expression=None, weekday=None, is_active=True,
                          sync_immediately=False, sync_historical_data=True, fetch_track_metadata=False,
                          history_start=TODAY - timedelta(days=30), deadline_hours=None, created_on=TODAY)


@pytest.fixture
def engine(tmp_path, monkeypatch):
    path = tmp_path / "chart.db"
    engine = migrated_sqlite(path)
    monkeypatch.setenv("AIRFLOW_CONN_CHART_DB", json.dumps({"conn_type": "sqlite", "host": str(path)}))
    monkeypatch.setenv("AIRFLOW_VAR_CHARTSYNC_ALERT_CHANNELS", "")
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "http://airflow.test")
    monkeypatch.setenv(settings.QUOTA_RESERVE_ENV, "50")
    with engine.begin() as conn:
        conn.execute(insert(chart).values(id=1, slug=SLUG, name="Apple Music US", platform="apple-music",
                                          frequency="daily", max_results=100, created_at=datetime.now(UTC)))
    yield engine
    engine.dispose()
    engine_for_url.cache_clear()


@pytest.fixture
def client(emulator, emulator_admin, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_SOUNDCHARTS_DEFAULT", json.dumps(
        {"conn_type": "http", "host": emulator.url, "login": "soundcharts", "password": "soundcharts"}))
    monkeypatch.setattr(client_module.time, "sleep", lambda seconds: None)
    return SoundchartsClient(max_attempts=2)


def wait_sync(engine, client, ref: RunRef, period, **kwargs):
    """sync_run as the chart DAG's task calls it: a caller that can wait for the quota."""
    return sync.sync_run(engine, client, config(), ref, period, wait_for_quota=True, **kwargs)


def set_quota(emulator, remaining: int | None) -> None:
    requests.post(f"{emulator.url}/__admin/quota", json={"remaining": remaining}, timeout=5).raise_for_status()


def rows(engine) -> list:
    e = chart_sync_execution.c
    with engine.connect() as conn:
        return conn.execute(select(e.run_id, e.try_number, e.period, e.status).order_by(e.id)).all()


def alert_kinds(engine) -> list[str]:
    with engine.connect() as conn:
        return [k for (k,) in conn.execute(select(chart_sync_alert.c.kind).order_by(chart_sync_alert.c.id))]


def test_a_quota_429_makes_the_period_wait_without_a_failure_and_one_alert_for_the_episode(engine, client, emulator):
    set_quota(emulator, 0)
    first = wait_sync(engine, client, run("scheduled__a"), NEWEST, run_type="scheduled")
    second = wait_sync(engine, client, run("scheduled__b"), HISTORY, run_type="scheduled")
    assert isinstance(first, WaitingForQuota) and first.reason == EXHAUSTED and first.remaining == 0
    assert first.history is False and first.period == NEWEST
    # the second one is history below the reserve (the quota last seen is 0): it waits without a call
    assert isinstance(second, WaitingForQuota) and second.reason == BELOW_RESERVE and second.history is True
    assert client.request_count == 1
    assert [(r.run_id, r.status) for r in rows(engine)] == [("scheduled__a", WAITING_FOR_QUOTA),
                                                             ("scheduled__b", WAITING_FOR_QUOTA)]
    assert alert_kinds(engine) == [QUOTA_EXHAUSTED]
    with engine.connect() as conn:
        episode = conn.execute(select(chart_sync_quota_episode)).one()
    assert episode.is_open and episode.periods_waited == 2
    with engine.connect() as conn:
        message = conn.execute(select(chart_sync_alert.c.message)).scalar_one()
    assert "used up" in message and "1 period(s) waiting so far" in message and "0 call(s) left" in message


def test_a_try_that_waits_again_keeps_one_row_and_its_success_replaces_it(engine, client, emulator):
    set_quota(emulator, 0)
    ref = run("scheduled__a", try_number=2)
    for _ in range(2):  # deferred, resumed, and the quota still out: the same try waits again
        assert isinstance(wait_sync(engine, client, ref, NEWEST), WaitingForQuota)
    assert [r.status for r in rows(engine)] == [WAITING_FOR_QUOTA]
    set_quota(emulator, None)
    assert isinstance(wait_sync(engine, client, ref, NEWEST), Synced)
    assert [(r.try_number, r.status) for r in rows(engine)] == [(2, SUCCESS)]  # one row for the try
    assert alert_kinds(engine) == [QUOTA_EXHAUSTED, QUOTA_RESTORED]  # the success saw the reserve back
    assert isinstance(wait_sync(engine, client, run("scheduled__c"), NEWEST), Synced)
    assert alert_kinds(engine) == [QUOTA_EXHAUSTED, QUOTA_RESTORED]  # no episode open: nothing more
    with engine.connect() as conn:
        message = conn.execute(select(chart_sync_alert.c.message).where(
            chart_sync_alert.c.kind == QUOTA_RESTORED)).scalar_one()
    assert "1 period(s) waited during this episode" in message and "back after less than a minute" in message


def test_how_long_an_episode_lasted_reads_in_plain_words():
    from chartsync.core.alerts import lasted

    assert [lasted(timedelta(seconds=s)) for s in (5, 125, 3 * 3600 + 60, 2 * 86400 + 7200)] == [
        "less than a minute", "2 min", "3 h 1 min", "2 d 2 h"]


def test_a_new_try_of_the_run_ends_the_wait_of_a_try_cleared_while_deferred(engine, client, emulator):
    set_quota(emulator, 0)
    assert isinstance(wait_sync(engine, client, run("scheduled__a", 1), NEWEST), WaitingForQuota)
    set_quota(emulator, None)  # the deferred try was cleared by hand: Airflow starts try 2, try 1 never resumes
    assert isinstance(wait_sync(engine, client, run("scheduled__a", 2), NEWEST), Synced)
    assert [(r.try_number, r.status) for r in rows(engine)] == [(2, SUCCESS)]


def test_below_the_reserve_history_waits_without_spending_while_the_newest_period_goes_on(engine, client,
                                                                                      emulator, monkeypatch):
    monkeypatch.setenv(settings.QUOTA_RESERVE_ENV, "1000")
    quota_store.record_reading(engine, QuotaReading(400, datetime.now(UTC)), "usage")
    history = wait_sync(engine, client, run("scheduled__old"), HISTORY, run_type="scheduled")
    backfill = wait_sync(engine, client, run("backfill__x"), NEWEST, run_type="backfill")
    assert isinstance(history, WaitingForQuota) and history.reason == BELOW_RESERVE and history.remaining == 400
    assert isinstance(backfill, WaitingForQuota) and backfill.history  # a backfill is history, whatever its period
    assert client.request_count == 0  # the gate spends no call
    newest = wait_sync(engine, client, run("scheduled__new"), NEWEST, run_type="scheduled")
    assert isinstance(newest, Synced) and client.request_count == 1
    latest = wait_sync(engine, client, run("manual__now"), None, run_type="manual")
    assert isinstance(latest, Synced)  # the newest published period (no period named) goes on too
    statuses = {r.run_id: r.status for r in rows(engine)}
    assert statuses == {"scheduled__old": WAITING_FOR_QUOTA, "backfill__x": WAITING_FOR_QUOTA,
                        "scheduled__new": SUCCESS, "manual__now": SUCCESS}


def test_a_rate_limit_429_keeps_the_wait_and_retry(engine, client, emulator_admin):
    emulator_admin.fault(kind="429")  # with Retry-After: the rate limit, not the quota
    with pytest.raises(SoundchartsRateLimited) as raised:
        wait_sync(engine, client, run("scheduled__a"), NEWEST)
    assert type(raised.value) is SoundchartsRateLimited
    assert [r.status for r in rows(engine)] == [FAILED]  # a failed try, retried by Airflow
    assert alert_kinds(engine) == []


def test_a_caller_that_cannot_wait_gets_the_quota_429_as_a_failed_try(engine, client, emulator, monkeypatch):
    from chartsync.soundcharts.client import SoundchartsQuotaExhausted

    monkeypatch.setenv(settings.QUOTA_RESERVE_ENV, "1000")
    quota_store.record_reading(engine, QuotaReading(400, datetime.now(UTC)), "usage")
    assert isinstance(sync.sync_run(engine, client, config(), run("cli__a"), HISTORY, run_type="manual"),
                      Synced)  # no reserve gate: a person asked for it now
    set_quota(emulator, 0)
    with pytest.raises(SoundchartsQuotaExhausted):
        sync.sync_run(engine, client, config(), run("cli__b"), HISTORY, run_type="manual")
    assert [r.status for r in rows(engine)] == [SUCCESS, FAILED] and alert_kinds(engine) == []


def test_a_failure_after_a_wait_replaces_the_waiting_row(engine, client, emulator, emulator_admin):
    set_quota(emulator, 0)
    assert isinstance(wait_sync(engine, client, run("scheduled__a"), NEWEST), WaitingForQuota)
    set_quota(emulator, None)
    emulator_admin.fault(kind="500")
    with pytest.raises(Exception):
        wait_sync(engine, client, run("scheduled__a"), NEWEST)
    assert [r.status for r in rows(engine)] == [FAILED]


# -- one alert of each per episode, whoever gets there first -------------------------------------------
def _postgres_engine(request, tmp_path, monkeypatch):
    pg = request.getfixturevalue("postgres")
    name = pg.create_database(f"quota_{tmp_path.name[-20:].lower().replace('-', '_')}")
    engine = create_engine(pg.url(name))
    upgrade(engine)
    monkeypatch.setenv("AIRFLOW_CONN_CHART_DB", pg.conn_json(name))
    monkeypatch.setenv("AIRFLOW_VAR_CHARTSYNC_ALERT_CHANNELS", "")
    monkeypatch.setenv(settings.QUOTA_RESERVE_ENV, "50")
    return engine


def _race(target, callers: int = 2) -> list:
    barrier, results = threading.Barrier(callers), []

    def call():
        barrier.wait()
        results.append(target())

    threads = [threading.Thread(target=call) for _ in range(callers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_concurrent_callers_raise_one_exhausted_and_one_restored_alert(backend, request, tmp_path, monkeypatch):
    if backend == "sqlite":
        path = tmp_path / "chart.db"
        engine = migrated_sqlite(path)
        monkeypatch.setenv("AIRFLOW_CONN_CHART_DB", json.dumps({"conn_type": "sqlite", "host": str(path)}))
        monkeypatch.setenv("AIRFLOW_VAR_CHARTSYNC_ALERT_CHANNELS", "")
        monkeypatch.setenv(settings.QUOTA_RESERVE_ENV, "50")
    else:
        engine = _postgres_engine(request, tmp_path, monkeypatch)
    seen = datetime.now(UTC)
    for _ in range(2):  # two episodes, one after the other
        opened = _race(lambda: alerts.quota_waiting(engine, remaining=0, seen_at=seen, started_waiting=True))
        assert sum(r is not None for r in opened) == 1
        closed = _race(lambda: alerts.quota_reading(engine, remaining=5000, seen_at=seen))
        assert sum(r is not None for r in closed) == 1
    assert alert_kinds(engine) == [QUOTA_EXHAUSTED, QUOTA_RESTORED] * 2
    with engine.connect() as conn:
        episodes = conn.execute(select(chart_sync_quota_episode).order_by(chart_sync_quota_episode.c.id)).all()
    assert [(e.is_open, e.periods_waited) for e in episodes] == [(None, 2), (None, 2)]
    engine.dispose()
    engine_for_url.cache_clear()


def test_a_reading_below_the_reserve_does_not_end_the_episode(engine):
    seen = datetime.now(UTC)
    alerts.quota_waiting(engine, remaining=0, seen_at=seen, started_waiting=True)
    assert alerts.quota_reading(engine, remaining=10, seen_at=seen) is None  # below the reserve of 50
    assert alerts.quota_reading(engine, remaining=None, seen_at=seen) is None
    assert alert_kinds(engine) == [QUOTA_EXHAUSTED]
    assert alerts.quota_reading(engine, remaining=50, seen_at=seen) is not None
    assert alert_kinds(engine) == [QUOTA_EXHAUSTED, QUOTA_RESTORED]


def test_the_history_rule(engine):
    cfg = config()
    assert sync.is_history(cfg, HISTORY, "scheduled", TODAY)
    assert not sync.is_history(cfg, NEWEST, "scheduled", TODAY)
    assert not sync.is_history(cfg, None, "manual", TODAY)
    assert sync.is_history(cfg, NEWEST, "backfill", TODAY)
    assert not sync.is_history(cfg, date(2000, 1, 1), None, date(2000, 1, 2))  # the newest of its day


def test_a_deferred_task_instance_is_never_a_failed_try():
    from types import SimpleNamespace

    from chartsync.seam.task_failures import from_task_instance

    ti = SimpleNamespace(state="deferred", dag_id=DAG_ID, run_id="scheduled__a", task_id="sync_ranking",
                         try_number=1, map_index=-1)
    assert from_task_instance(ti) is None  # the listeners and the reconciliation report nothing for it
