"""What every chart-sync DAG starts from: the task defaults (declared once, layered per DAG), the settings
the daily housekeeping DAGs share, and the rankings assets every sync emits: the aggregate one and the chart's
own."""

from __future__ import annotations

from typing import Any

from airflow.sdk import Asset, CronTriggerTimetable

from chartsync import settings
from chartsync.builders.callbacks import on_task_failure

RANKINGS_ASSET = Asset(settings.RANKINGS_ASSET_URI, group=settings.ASSET_GROUP)


def chart_rankings_asset(slug: str) -> Asset:
    """One chart's rankings, ``chartsync://rankings/<slug>``: what a DAG downstream of one chart waits for."""
    return Asset(f"{settings.RANKINGS_ASSET_URI}/{slug}", group=settings.ASSET_GROUP)


def default_args(**overrides: Any) -> dict[str, Any]:
    """The task defaults of every chart-sync DAG, with this DAG's ``overrides`` on top."""
    return {
        "owner": settings.OWNER,
        "retries": settings.RETRIES,
        "retry_delay": settings.retry_delay(),
        "retry_exponential_backoff": settings.RETRY_EXPONENTIAL_BACKOFF,
        "max_retry_delay": settings.MAX_RETRY_DELAY,
        "execution_timeout": settings.EXECUTION_TIMEOUT,
        "pool": settings.SOUNDCHARTS_POOL,
        "on_failure_callback": on_task_failure,  # called once, when no retry is left
    } | overrides


def without_api(**overrides: Any) -> dict[str, Any]:
    """Defaults of a DAG that never calls Soundcharts: it keeps the API pool free."""
    return default_args(pool="default_pool", **overrides)


def housekeeping_dag_kwargs(cron: str, kind: str, *, calls_api: bool = False) -> dict[str, Any]:
    """The DAG settings of a daily housekeeping DAG (the gap audit, retention, the warehouse checks, the alert
    digest): the UTC ``cron``, no catchup, one run at a time, unpaused from the start (they are part of the
    product), tagged with its ``kind``. Without a ``start_date`` (the caller may add one) the first run is
    the next tick, not an immediate one when the DAG appears. ``calls_api``: its tasks take the Soundcharts
    pool (``default_args``), else they keep it free (``without_api``)."""
    return {
        "schedule": CronTriggerTimetable(cron, timezone="UTC"),
        "catchup": False,
        "max_active_runs": 1,
        "is_paused_upon_creation": False,
        "default_args": default_args() if calls_api else without_api(),
        "tags": [settings.TAG, kind],
    }
