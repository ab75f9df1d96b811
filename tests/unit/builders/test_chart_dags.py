"""The chart DAG's task maps the sync service's outcome to Airflow's terms (and nothing else)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import AirflowFailException, AirflowRescheduleException

from chartsync.builders.chart_dags import run_ref, run_type, task_result
from chartsync.builders.defaults import RANKINGS_ASSET
from chartsync.core.calendar import Frequency
from chartsync.core.outcomes import Failed, NotPublishedYet, Skipped, Synced, SyncResult
from chartsync.core.schedule import ScheduleConfig

PERIOD = date(2026, 11, 20)
CONFIG = ScheduleConfig(
    schedule_id=1, chart_id=3, slug="a-chart", chart_name="A", platform="spotify", country_code=None,
    chart_frequency="daily", frequency=Frequency.DAILY, custom_interval_hours=None, cron_expression=None,
    weekday=None, is_active=True, sync_immediately=True, sync_historical_data=True, fetch_track_metadata=True,
    history_start=date(2025, 11, 20), deadline_hours=None, created_on=date(2026, 11, 20))


def context() -> dict:
    return {"outlet_events": {RANKINGS_ASSET: SimpleNamespace(extra=None)},
            "ti": SimpleNamespace(dag_id="chart_sync__a-chart", run_id="scheduled__x", try_number=2),
            "dag_run": SimpleNamespace(run_type=SimpleNamespace(value="backfill"))}


def test_a_synced_period_returns_its_counts_and_announces_its_execution():
    result = SyncResult(PERIOD, rankings_created=1, entries_written=200, new_track_ids=(5,), execution_id=9)
    ctx = context()
    returned = task_result(Synced(result, (result,)), CONFIG, ctx)
    assert returned["status"] == "success" and returned["entries_written"] == 200
    assert returned["execution_id"] == 9 and returned["period"] == "2026-11-20"
    assert ctx["outlet_events"][RANKINGS_ASSET].extra["syncs"] == [
        {"execution_id": 9, "period": "2026-11-20", "new_track_ids": [5]}]


def test_an_unpublished_period_reschedules_the_task():
    retry_at = datetime(2026, 11, 21, 1, 30, tzinfo=UTC)
    with pytest.raises(AirflowRescheduleException) as raised:
        task_result(NotPublishedYet(PERIOD, retry_at, retry_at + timedelta(hours=30)), CONFIG, context())
    assert raised.value.reschedule_date == retry_at


def test_a_failure_fails_without_retry_and_a_skip_returns():
    with pytest.raises(AirflowFailException, match="still not published"):
        task_result(Failed("a-chart: period 2026-11-20 still not published"), CONFIG, context())
    assert task_result(Skipped(PERIOD, "skipped"), CONFIG, context()) == {"period": "2026-11-20",
                                                                            "status": "skipped"}


def test_the_run_is_named_from_the_task_instance():
    ctx = context()
    assert run_ref(CONFIG, ctx) == run_ref(CONFIG, ctx)
    ref = run_ref(CONFIG, ctx)
    assert (ref.chart_id, ref.dag_id, ref.run_id, ref.try_number) == (3, "chart_sync__a-chart", "scheduled__x", 2)
    assert run_type(ctx) == "backfill"
