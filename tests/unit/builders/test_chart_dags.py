"""The chart DAG's task maps the sync service's outcome to Airflow's terms (and nothing else), and
announces it on the aggregate rankings asset and on the chart's own."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace

import pytest
from airflow.sdk import Asset
from airflow.sdk.exceptions import AirflowFailException, AirflowRescheduleException

from chartsync import settings
from chartsync.builders import chart_dags
from chartsync.builders.chart_dags import build_dag, run_ref, run_type, task_result
from chartsync.builders.defaults import RANKINGS_ASSET, chart_rankings_asset
from chartsync.core.calendar import Frequency
from chartsync.core.outcomes import Failed, NotPublishedYet, Skipped, Synced, SyncResult
from chartsync.core.schedule import ScheduleConfig

PERIOD = date(2026, 11, 20)
CONFIG = ScheduleConfig(
    schedule_id=1, chart_id=3, slug="a-chart", chart_name="A", platform="spotify", country_code=None,
    chart_frequency="daily", frequency=Frequency.DAILY, custom_interval_hours=None, cron_expression=None,
    weekday=None, is_active=True, sync_immediately=True, sync_historical_data=True, fetch_track_metadata=True,
    history_start=date(2025, 11, 20), deadline_hours=None, created_on=date(2026, 11, 20))


CHART_ASSET = Asset("chartsync://rankings/a-chart", group="chart-sync")


def context() -> dict:
    return {"outlet_events": {RANKINGS_ASSET: SimpleNamespace(extra=None), CHART_ASSET: SimpleNamespace(extra=None)},
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
    assert ctx["outlet_events"][CHART_ASSET].extra == {
        "chart_id": 3, "slug": "a-chart", "period": "2026-11-20", "periods": ["2026-11-20"],
        "entries_written": 200, "tracks_created": 0}


def test_the_sync_task_emits_the_aggregate_and_the_charts_own_asset(monkeypatch):
    monkeypatch.setenv(settings.DEADLINE_ALERTS_ENV, "off")
    [sync] = build_dag(CONFIG).tasks
    assert sync.outlets == [RANKINGS_ASSET, CHART_ASSET]
    assert chart_rankings_asset("a-chart") == CHART_ASSET
    assert CHART_ASSET.uri == "chartsync://rankings/a-chart"
    assert chart_rankings_asset("a-chart").group == RANKINGS_ASSET.group == "chart-sync"


def test_a_run_that_stores_several_periods_names_the_newest_and_sums_the_counts():
    older = SyncResult(PERIOD - timedelta(days=1), entries_written=200, tracks_created=3, execution_id=8)
    newest = SyncResult(PERIOD, entries_written=200, tracks_created=1, execution_id=9)
    ctx = context()
    task_result(Synced(older, (newest, older)), CONFIG, ctx)
    extra = ctx["outlet_events"][CHART_ASSET].extra
    assert (extra["period"], extra["periods"]) == ("2026-11-20", ["2026-11-19", "2026-11-20"])
    assert (extra["entries_written"], extra["tracks_created"]) == (400, 4)


def test_nothing_stored_sets_no_extra():
    ctx = context()
    task_result(Skipped(PERIOD, "skipped"), CONFIG, ctx)
    assert ctx["outlet_events"][CHART_ASSET].extra is None and ctx["outlet_events"][RANKINGS_ASSET].extra is None


def test_a_dag_id_of_another_shard_reads_nothing(monkeypatch):
    def no_db(*_args, **_kwargs):
        raise AssertionError("the chart DB must not be read")

    monkeypatch.setattr(chart_dags, "load_rows", no_db)
    other = next(k for k in range(settings.CHART_DAG_SHARDS) if k != settings.chart_dag_shard("a-chart"))
    assert chart_dags.build_dags(other, "chart_sync__a-chart") == {}
    assert chart_dags.build_dags(other, "chart_sync_track_metadata") == {}


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
