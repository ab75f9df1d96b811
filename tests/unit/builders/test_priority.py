"""Fresh data first in the API pool: the chart DAGs' priority weight strategy, as Airflow's scheduler applies it
when it creates a task instance (``TaskInstance.insert_mapping``)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace

import pytest

from chartsync.builders import priority
from chartsync.builders.priority import HORIZON_HOURS, NewestPeriodFirst, freshness_bonus, run_after_of
from chartsync.builders.sync_task import SyncRankingOperator
from chartsync.core.calendar import Frequency
from chartsync.core.schedule import ScheduleConfig

NOW = datetime(2026, 12, 7, 0, 5, tzinfo=UTC)
CONFIG = ScheduleConfig(
    schedule_id=1, chart_id=3, slug="a-chart", chart_name="A", platform="spotify", country_code=None,
    chart_frequency="daily", frequency=Frequency.DAILY, custom_interval_hours=None, cron_expression=None,
    weekday=None, is_active=True, sync_immediately=False, sync_historical_data=True, fetch_track_metadata=True,
    history_start=date(2026, 11, 1), deadline_hours=None, created_on=date(2026, 12, 1))


def test_run_ids_carry_their_run_after_date():
    assert run_after_of("scheduled__2026-12-07T00:00:00+00:00") == datetime(2026, 12, 7, tzinfo=UTC)
    assert run_after_of("manual__2026-12-06T10:11:12.123456+00:00_AbCdEfGh") == datetime(
        2026, 12, 6, 10, 11, 12, 123456, tzinfo=UTC)
    assert run_after_of("my-own-run") is None and run_after_of(None) is None


def test_the_newest_period_outranks_catchup_and_backfill():
    newest = freshness_bonus("scheduled__2026-12-07T00:00:00+00:00", NOW)
    yesterday = freshness_bonus("scheduled__2026-12-06T00:00:00+00:00", NOW)
    month_old = freshness_bonus("scheduled__2026-11-07T00:00:00+00:00", NOW)
    assert newest == HORIZON_HOURS > yesterday > month_old > 0
    assert freshness_bonus("backfill__2026-12-07T00:00:00+00:00", NOW) == 0  # history, however recent
    assert freshness_bonus("scheduled__2020-01-01T00:00:00+00:00", NOW) == 0  # past the horizon
    assert freshness_bonus("manual__2026-12-07T00:04:00+00:00_xyz", NOW) == HORIZON_HOURS  # a person waits
    assert freshness_bonus("a-custom-id", NOW) == HORIZON_HOURS


def test_get_weight_adds_the_bonus_to_the_tasks_own_weight():
    ti = SimpleNamespace(task=SimpleNamespace(priority_weight=3), run_id=f"scheduled__{datetime.now(UTC).isoformat()}")
    assert NewestPeriodFirst().get_weight(ti) == 3 + HORIZON_HOURS
    ti.run_id = "backfill__2026-12-07T00:00:00+00:00"
    assert NewestPeriodFirst().get_weight(ti) == 3


@pytest.fixture
def registered(monkeypatch):
    from airflow import plugins_manager

    name = f"{NewestPeriodFirst.__module__}.{NewestPeriodFirst.__qualname__}"
    monkeypatch.setattr(plugins_manager, "get_priority_weight_strategy_plugins", lambda: {name: NewestPeriodFirst})
    priority.chart_weight_rule.cache_clear()
    yield
    priority.chart_weight_rule.cache_clear()


def test_the_scheduler_weighs_the_newest_periods_task_instance_above_a_catchup_one(registered):
    from airflow.models.taskinstance import TaskInstance
    from airflow.sdk import DAG
    from airflow.serialization.serialized_objects import DagSerialization

    with DAG("chart_sync__a-chart", schedule=None, start_date=datetime(2026, 11, 1, tzinfo=UTC)) as dag:
        SyncRankingOperator(config=CONFIG)
    # the task as the scheduler holds it: serialized (only a registered strategy serializes) and read back
    task = DagSerialization.from_dict(DagSerialization.to_dict(dag)).get_task("sync_ranking")
    now = datetime.now(UTC)

    def weight(run_after: datetime) -> int:
        mapping = TaskInstance.insert_mapping(f"scheduled__{run_after.isoformat()}", task, -1, dag_version_id=None,
                                              dag_run=SimpleNamespace(context_carrier=None))
        return mapping["priority_weight"]

    assert weight(now) > weight(now - timedelta(days=1)) > weight(now - timedelta(days=30)) >= 1


def test_without_the_plugin_the_dags_keep_airflows_default_rule(monkeypatch):
    from airflow import plugins_manager

    monkeypatch.setattr(plugins_manager, "get_priority_weight_strategy_plugins", lambda: {})
    priority.chart_weight_rule.cache_clear()
    try:
        assert priority.chart_weight_rule() is None
        assert not isinstance(SyncRankingOperator(config=CONFIG).weight_rule, NewestPeriodFirst)
    finally:
        priority.chart_weight_rule.cache_clear()
