"""Retention: prune execution history and recorded alerts older than a configurable age.

The age is the Airflow Variable ``chartsync_retention_days`` (default 180). Synced data
(rankings, entries, tracks) is never touched: only the logs about syncing it.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, delete

from chartsync.store.tables import chart_sync_alert, chart_sync_execution

log = logging.getLogger(__name__)

RETENTION_DAG_ID = "chart_sync_retention"
RETENTION_VARIABLE = "chartsync_retention_days"
DEFAULT_RETENTION_DAYS = 180


def retention_days(value: str | int | None) -> int:
    """The configured age in whole days (default when unset); ValueError names the variable."""
    if value is None or str(value).strip() == "":
        return DEFAULT_RETENTION_DAYS
    try:
        days = int(str(value).strip())
    except ValueError:
        raise ValueError(f"{RETENTION_VARIABLE} must be a whole number of days, not {value!r}") from None
    if days < 1:
        raise ValueError(f"{RETENTION_VARIABLE} must be at least 1 day, not {days}")
    return days


def prune(engine: Engine, days: int, now: datetime | None = None) -> dict:
    """Delete execution rows started, and alerts created, more than ``days`` ago; what was removed."""
    cutoff = (now or datetime.now(UTC)) - timedelta(days=days)
    with engine.begin() as conn:
        executions = conn.execute(
            delete(chart_sync_execution).where(chart_sync_execution.c.started_at < cutoff))
        alerts = conn.execute(delete(chart_sync_alert).where(chart_sync_alert.c.created_at < cutoff))
    removed = {"retention_days": days, "cutoff": cutoff.isoformat(),
               "executions_deleted": executions.rowcount, "alerts_deleted": alerts.rowcount}
    log.info("chart-sync retention: removed %(executions_deleted)d execution rows and %(alerts_deleted)d "
             "alerts older than %(retention_days)d days (before %(cutoff)s)", removed)
    return removed


def build_retention_dag():
    from airflow.sdk import DAG, CronTriggerTimetable, Variable, task

    from chartsync.builders.chart_dags import DEFAULT_ARGS

    with DAG(
        dag_id=RETENTION_DAG_ID,
        description="Prune chart_sync_execution and chart_sync_alert rows past the retention age",
        # no start_date: the first run is the next tick, not an immediate one when the DAG appears
        schedule=CronTriggerTimetable("30 3 * * *", timezone="UTC"),
        catchup=False,
        max_active_runs=1,
        is_paused_upon_creation=False,
        default_args={**DEFAULT_ARGS, "pool": "default_pool"},  # no Soundcharts call: keep the API pool free
        tags=["chart-sync", "maintenance"],
        doc_md=(
            "# Retention\n\nDaily at 03:30 UTC (and on demand). Deletes `chart_sync_execution` rows started, "
            f"and `chart_sync_alert` rows created, more than `{RETENTION_VARIABLE}` days ago (Airflow "
            f"Variable, default {DEFAULT_RETENTION_DAYS}). Rankings and tracks are never touched. The task "
            "log and its return value say what was removed."
        ),
    ) as dag:

        @task(task_id="prune_history")
        def prune_history() -> dict:
            from chartsync.store.engine import chart_engine

            return prune(chart_engine(), retention_days(Variable.get(RETENTION_VARIABLE, default=None)))

        prune_history()
    return dag
