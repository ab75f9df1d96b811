"""The sync task defers while its period waits for the quota, and Airflow resumes it through
``execute_complete``; ``QuotaTrigger`` serializes for the triggerer and fires once the emulator's quota is back
(read from the free usage endpoint, recorded, and the episode closed)."""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace

import pytest
import requests
from airflow.sdk import Asset
from airflow.sdk.exceptions import TaskDeferred
from sqlalchemy import insert, select

from chartsync import settings
from chartsync.builders import sync_task
from chartsync.builders.chart_dags import build_dag
from chartsync.builders.defaults import RANKINGS_ASSET
from chartsync.builders.quota_trigger import QuotaTrigger, quota_needed
from chartsync.builders.sync_task import SyncRankingOperator
from chartsync.core.alerts import QUOTA_EXHAUSTED, QUOTA_RESTORED
from chartsync.core.calendar import Frequency
from chartsync.core.outcomes import BELOW_RESERVE, EXHAUSTED, Synced, SyncResult, WaitingForQuota
from chartsync.core.schedule import ScheduleConfig
from chartsync.services import alerts
from chartsync.store import quota as quota_store
from chartsync.store.engine import engine_for_url
from chartsync.store.tables import chart_sync_alert, chart_sync_quota_reading
from conftest import migrated_sqlite

PERIOD = date(2026, 11, 20)
CONFIG = ScheduleConfig(
    schedule_id=1, chart_id=3, slug="a-chart", chart_name="A", platform="spotify", country_code=None,
    chart_frequency="daily", frequency=Frequency.DAILY, custom_interval_hours=None, cron_expression=None,
    weekday=None, is_active=True, sync_immediately=False, sync_historical_data=True, fetch_track_metadata=True,
    history_start=date(2025, 11, 20), deadline_hours=None, created_on=date(2026, 11, 20))
CHART_ASSET = Asset("chartsync://rankings/a-chart", group="chart-sync")


def context() -> dict:
    return {"outlet_events": {RANKINGS_ASSET: SimpleNamespace(extra=None), CHART_ASSET: SimpleNamespace(extra=None)},
            "ti": SimpleNamespace(dag_id="chart_sync__a-chart", run_id="scheduled__x", try_number=1),
            "dag_run": SimpleNamespace(run_type="scheduled"),
            "logical_date": datetime(2026, 11, 20, tzinfo=UTC), "data_interval_end": datetime(2026, 11, 21, tzinfo=UTC)}


@pytest.fixture
def outcomes(monkeypatch):
    """sync_run answers the queued outcomes in turn; the calls it got are kept."""
    from chartsync.services import sync

    queued, calls = [], []

    def sync_run(engine, client, config, run, period, *, run_type=None, now=None, wait_for_quota=False):
        calls.append((run, period, run_type, wait_for_quota))
        return queued.pop(0)

    monkeypatch.setattr(sync, "sync_run", sync_run)
    monkeypatch.setattr(sync_task, "chart_engine", lambda: None)
    return SimpleNamespace(queued=queued, calls=calls)


def test_the_dags_task_is_the_deferrable_sync_operator(monkeypatch):
    monkeypatch.setenv(settings.DEADLINE_ALERTS_ENV, "off")
    [task] = build_dag(CONFIG).tasks
    assert isinstance(task, SyncRankingOperator) and task.task_id == "sync_ranking"
    assert task.pool == settings.SOUNDCHARTS_POOL and task.retries == settings.RETRIES
    assert task.outlets == [RANKINGS_ASSET, CHART_ASSET] and task.multiple_outputs is False


def test_waiting_for_quota_defers_to_the_quota_trigger_and_spends_no_try(outcomes):
    pulled = SyncResult(date(2026, 12, 6), entries_written=200, execution_id=7)
    outcomes.queued.append(WaitingForQuota(PERIOD, 0, datetime.now(UTC), EXHAUSTED, history=True, results=(pulled,)))
    with pytest.raises(TaskDeferred) as deferred:
        SyncRankingOperator(config=CONFIG).execute(context())
    trigger = deferred.value.trigger
    assert isinstance(trigger, QuotaTrigger) and trigger.history is True and trigger.period == "2026-11-20"
    assert deferred.value.method_name == "execute_complete" and deferred.value.timeout is None
    assert deferred.value.kwargs == {"synced": [pulled.as_dict()]}
    assert outcomes.calls[0][1:] == (PERIOD, "scheduled", True)  # the task can wait for the quota


def test_airflow_resumes_the_task_with_the_event_and_it_syncs_again(outcomes):
    pulled = SyncResult(date(2026, 12, 6), entries_written=200, execution_id=7)
    stored = SyncResult(PERIOD, rankings_created=1, entries_written=100, execution_id=8)
    outcomes.queued.append(Synced(stored, (stored,)))
    ctx = context()
    # what Airflow's task runner calls on resume: the method the task named, the trigger's event and the kwargs
    returned = SyncRankingOperator(config=CONFIG).resume_execution(
        "execute_complete", {"event": {"remaining": 10, "seen_at": "x"}, "synced": [pulled.as_dict()]}, ctx)
    assert returned["status"] == "success" and returned["execution_id"] == 8
    assert [s["execution_id"] for s in ctx["outlet_events"][RANKINGS_ASSET].extra["syncs"]] == [7, 8]
    assert ctx["outlet_events"][CHART_ASSET].extra["periods"] == ["2026-11-20", "2026-12-06"]


def test_a_period_still_waiting_after_resuming_defers_again(outcomes):
    outcomes.queued.append(WaitingForQuota(PERIOD, 3, datetime.now(UTC), BELOW_RESERVE, history=True))
    with pytest.raises(TaskDeferred):
        SyncRankingOperator(config=CONFIG).execute_complete(context(), event={"remaining": 60})


def test_the_trigger_serializes_to_a_class_the_triggerer_can_import():
    from airflow._shared.module_loading import import_string

    classpath, kwargs = QuotaTrigger(history=True, slug="a-chart", period="2026-11-20").serialize()
    again = import_string(classpath)(**kwargs)
    assert isinstance(again, QuotaTrigger) and again.serialize() == (classpath, kwargs)
    assert json.loads(json.dumps(kwargs)) == kwargs  # plain values: stored as the trigger's kwargs


def test_history_needs_the_reserve_the_newest_period_some_quota():
    assert quota_needed(history=True, reserve=1000) == 1000
    assert quota_needed(history=False, reserve=1000) == 1
    assert quota_needed(history=True, reserve=0) == 1


# -- the trigger against the emulator --------------------------------------------------------------------
@pytest.fixture
def chart_db(tmp_path, monkeypatch, emulator, emulator_admin):
    path = tmp_path / "chart.db"
    engine = migrated_sqlite(path)
    with engine.begin() as conn:
        conn.execute(insert(chart_sync_quota_reading).values(seen_at=datetime.now(UTC) - timedelta(hours=2),
                                                             remaining=0, source="response"))
    monkeypatch.setenv("AIRFLOW_CONN_CHART_DB", json.dumps({"conn_type": "sqlite", "host": str(path)}))
    monkeypatch.setenv("AIRFLOW_CONN_SOUNDCHARTS_DEFAULT", json.dumps(
        {"conn_type": "http", "host": emulator.url, "login": "soundcharts", "password": "soundcharts"}))
    monkeypatch.setenv("AIRFLOW_VAR_CHARTSYNC_ALERT_CHANNELS", "")
    monkeypatch.setenv(settings.QUOTA_RESERVE_ENV, "50")
    yield engine
    engine.dispose()
    engine_for_url.cache_clear()


def set_quota(emulator, remaining: int) -> None:
    requests.post(f"{emulator.url}/__admin/quota", json={"remaining": remaining}, timeout=5).raise_for_status()


def usage_reads(emulator) -> int:
    by_path = requests.get(f"{emulator.url}/__admin/requests", timeout=5).json()["by_path"]
    return sum(n for path, n in by_path.items() if path.rstrip("/").endswith("/team/usage"))


async def _fire_after(trigger: QuotaTrigger, emulator, steps: list[int]) -> dict:
    """Run the trigger; set the emulator's quota to each of ``steps`` once the trigger has read the previous one
    twice (and not fired on it)."""
    set_quota(emulator, steps[0])
    run = asyncio.ensure_future(anext(trigger.run()))
    for remaining in steps[1:]:
        seen = await asyncio.to_thread(usage_reads, emulator)
        while await asyncio.to_thread(usage_reads, emulator) < seen + 2 and not run.done():
            await asyncio.sleep(0.01)
        assert not run.done()  # read twice, not enough
        await asyncio.to_thread(set_quota, emulator, remaining)
    event = await asyncio.wait_for(run, timeout=60)  # a safety net: the assertions are on what it fired
    return event.payload


def in_a_loop_of_its_own(coroutine):
    """Run ``coroutine`` as the triggerer would, in an event loop of its own: on a thread, because a test run
    before this one in the same process (a browser test's sync API) may leave a loop running on this one."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def test_the_trigger_fires_once_the_quota_is_back_recording_what_it_read(chart_db, emulator):
    alerts.quota_waiting(chart_db, remaining=0, seen_at=datetime.now(UTC), started_waiting=True)
    trigger = QuotaTrigger(history=False, slug="a-chart", period="2026-11-20", recheck_seconds=0.01)
    payload = in_a_loop_of_its_own(_fire_after(trigger, emulator, [0, 7]))
    assert payload["remaining"] == 7
    assert quota_store.latest_reading(chart_db).remaining == 7  # recorded (source: usage)
    with chart_db.connect() as conn:
        sources = {s for (s,) in conn.execute(select(chart_sync_quota_reading.c.source))}
        kinds = [k for (k,) in conn.execute(select(chart_sync_alert.c.kind))]
    assert "usage" in sources
    assert kinds == [QUOTA_EXHAUSTED]  # 7 is below the reserve of 50: the episode goes on


def test_a_history_trigger_waits_for_the_reserve_and_ends_the_episode(chart_db, emulator):
    alerts.quota_waiting(chart_db, remaining=0, seen_at=datetime.now(UTC), started_waiting=True)
    trigger = QuotaTrigger(history=True, slug="a-chart", period="2026-11-20", recheck_seconds=0.01)
    payload = in_a_loop_of_its_own(_fire_after(trigger, emulator, [0, 20, 60]))  # 20: some, not the reserve
    assert payload["remaining"] == 60
    with chart_db.connect() as conn:
        kinds = [k for (k,) in conn.execute(select(chart_sync_alert.c.kind).order_by(chart_sync_alert.c.id))]
    assert kinds == [QUOTA_EXHAUSTED, QUOTA_RESTORED]
