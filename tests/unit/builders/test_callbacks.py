"""The callbacks and Deadline Alerts the chart DAGs carry (builders.callbacks)."""

from __future__ import annotations

from datetime import date, timedelta

from chartsync import settings
from chartsync.builders import callbacks
from chartsync.core import calendar
from chartsync.core.calendar import Frequency
from chartsync.core.schedule import ScheduleConfig
from conftest import run_coroutine


def config(frequency=Frequency.DAILY, deadline_hours=None, custom_interval_hours=None, cron_expression=None):
    return ScheduleConfig(
        schedule_id=7, chart_id=3, slug="spotify-top-200-global-daily", chart_name="Top 200 Global",
        platform="spotify", country_code=None, chart_frequency="daily", frequency=frequency,
        custom_interval_hours=custom_interval_hours, cron_expression=cron_expression, weekday=None,
        is_active=True, sync_immediately=True, sync_historical_data=False, fetch_track_metadata=True,
        history_start=date(2025, 11, 24), deadline_hours=deadline_hours, created_on=date(2026, 11, 1))


def test_a_chart_dag_gets_a_logical_date_deadline_and_an_average_runtime_deadline(monkeypatch):
    from airflow.sdk.definitions.deadline import AverageRuntimeDeadline, DagRunLogicalDateDeadline

    monkeypatch.delenv(settings.DEADLINE_ALERTS_ENV, raising=False)
    monkeypatch.setattr("sys.argv", ["/venv/bin/airflow", "dag-processor"])
    sync, slow = callbacks.deadlines_for(config(Frequency.WEEKLY, deadline_hours=10))
    assert isinstance(sync.reference, DagRunLogicalDateDeadline)
    assert sync.interval == timedelta(days=7, hours=10)
    assert sync.callback.path == "chartsync.builders.callbacks.on_deadline_missed"
    # what describes the deadline only: no schedule or chart id frozen into every run's deadline
    assert sync.callback.kwargs == {"kind": "deadline", "frequency": "weekly", "allowed_hours": 10.0}
    assert isinstance(slow.reference, AverageRuntimeDeadline)
    assert (slow.reference.max_runs, slow.reference.min_runs) == (20, 5)
    assert slow.interval == calendar.DEGRADATION_SLACK and slow.callback.kwargs["kind"] == "degradation"


def test_chart_dag_with_deadlines_serializes(monkeypatch):
    from airflow.serialization.serialized_objects import DagSerialization
    from chartsync.builders.chart_dags import build_dag

    monkeypatch.setattr("sys.argv", ["/venv/bin/airflow", "dag-processor"])
    dag = build_dag(config())
    serialized = DagSerialization.serialize_dag(dag)
    assert len(serialized["deadline"]) == 2
    assert dag.task_dict["sync_ranking"].on_failure_callback == [callbacks.on_task_failure]


def test_the_deadline_callback_ignores_ids_frozen_by_earlier_versions(monkeypatch):
    """Deadlines Airflow created before the callback stopped carrying ids still hold them: the callback
    takes them and passes on only what describes the deadline (the chart is found by the run's DAG)."""
    from chartsync.core.alerts import DeadlineOutcome
    from chartsync.services import alerts

    seen = {}

    def handle(kind, context, **kwargs):
        seen.update(kind=kind, context=context, **kwargs)
        return DeadlineOutcome(kind, "spotify-top-200-global-daily", reason="catchup run")

    monkeypatch.setattr(alerts, "handle_deadline_miss", handle)
    context = {"dag_run": {"dag_id": "chart_sync__spotify-top-200-global-daily"}, "deadline": {}}
    output = run_coroutine(callbacks.on_deadline_missed(
        kind="deadline", schedule_id=7, chart_id=3, chart="spotify-top-200-global-daily",
        chart_name="Top 200 Global", frequency="daily", allowed_hours=12.0, context=context))
    assert seen == {"kind": "deadline", "context": context, "frequency": "daily", "allowed_hours": 12.0}
    assert output == "no deadline alert for spotify-top-200-global-daily: catchup run"
