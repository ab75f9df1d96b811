"""The DAG factory: one sync DAG per row of ``chart_sync_schedule``.

The schedules are spread over ``settings.CHART_DAG_SHARDS`` DAG files (``dags/chart_sync_00.py``
...) by a hash of the slug, so each file stays quick to parse however many charts there are, and a
new schedule changes one file's DAGs only; a DAG's id never depends on its file. Reading the
config table at parse time is deliberate and kept cheap: only the file's shard, only the requested
DAG when Airflow's parsing context names one, and a last-known-good snapshot per shard
(``store.snapshot``) so a chart DB outage never makes DAGs vanish. A bad row yields a paused
placeholder DAG that shows the error: only that chart is affected.

The DAG's one task is ``builders.sync_task.SyncRankingOperator``: ``services.sync.sync_run`` decides and
returns an outcome; ``task_result`` maps it to Airflow's terms, and a period waiting for the Soundcharts
quota defers (``builders.quota_trigger``). Its priority weight puts each chart's newest period before
history in the API pool (``builders.priority``).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import DAG, CronDataIntervalTimetable, DeltaDataIntervalTimetable, task
from airflow.sdk.exceptions import AirflowFailException

from chartsync import settings
from chartsync.builders.callbacks import deadlines_for
from chartsync.builders.defaults import RANKINGS_ASSET, chart_rankings_asset, default_args
from chartsync.builders.sync_task import (  # the task's mapping, importable from the factory as before
    SyncRankingOperator,
    chart_event_extra,
    run_ref,
    run_type,
    task_result,
)
from chartsync.core import calendar
from chartsync.core.calendar import Frequency
from chartsync.core.schedule import ScheduleConfig, ScheduleError, slug_of
from chartsync.core.timestamps import midnight
from chartsync.store import snapshot
from chartsync.store.engine import chart_engine
from chartsync.store.schedules import load_rows

log = logging.getLogger(__name__)


# -- reading the config table --------------------------------------------------------------------
def read_schedule_rows(shard: int, dag_id: str | None = None) -> list[Any]:
    """The shard's rows of the config table (only ``dag_id``'s when it names one of them); the
    shard's snapshot when the chart DB cannot be read."""
    slug = slug_of(dag_id)
    if dag_id and (slug is None or settings.chart_dag_shard(slug) != shard):
        return []  # another file's DAG: build nothing
    try:
        rows = load_rows(chart_engine(), slug) if slug else load_rows(chart_engine(), shard=shard)
    except Exception as exc:  # the DB is down or unconfigured: keep the DAGs we knew
        rows = snapshot.read(shard, slug)
        log.warning("chart-sync: chart DB unreadable (%s); using the snapshot of %d schedules", exc, len(rows))
        return rows
    if slug is None:
        snapshot.write(shard, rows)
    return rows


# -- building DAGs ---------------------------------------------------------------------------------
def build_dags(shard: int, dag_id: str | None = None) -> dict[str, DAG]:
    """The chart DAGs of one DAG file's shard (or only ``dag_id``, when it is one of them), keyed by
    dag_id; bad rows become placeholder DAGs."""
    dags: dict[str, DAG] = {}
    task_defaults = default_args()  # once for the file: every DAG takes its own copy
    for row in read_schedule_rows(shard, dag_id):
        try:
            config = ScheduleConfig.from_row(row)
            if config.dag_id in dags:
                raise ScheduleError("slug", f"{config.slug!r} collides with another chart's DAG id")
            dags[config.dag_id] = build_dag(config, task_defaults)
        except Exception as exc:
            log.error("chart-sync: schedule %s (chart %r) is invalid: %s", row.id, row.slug, exc)
            broken = broken_dag(row, exc)
            dags.setdefault(broken.dag_id, broken)
    return dags


def timetable_for(config: ScheduleConfig):
    if config.frequency is Frequency.CUSTOM:
        return DeltaDataIntervalTimetable(timedelta(hours=config.custom_interval_hours))
    if config.frequency is Frequency.CRON:
        return CronDataIntervalTimetable(config.cron_expression, timezone="UTC")
    return CronDataIntervalTimetable(calendar.cron_for(config.frequency, config.weekday), timezone="UTC")


def start_date_for(config: ScheduleConfig) -> datetime:
    """The DAG's start: its first period (``ScheduleConfig.dag_start``) at midnight UTC."""
    return midnight(config.dag_start)


def build_dag(config: ScheduleConfig, task_defaults: dict[str, Any] | None = None) -> DAG:
    """One chart's sync DAG; ``task_defaults`` (``defaults.default_args()``) may be shared by many."""
    start = start_date_for(config)
    with DAG(
        dag_id=config.dag_id,
        description=f"Sync {config.chart_name} ({config.platform}) rankings from Soundcharts",
        schedule=timetable_for(config),
        start_date=start,
        catchup=config.sync_historical_data,
        is_paused_upon_creation=not config.is_active,
        max_active_runs=settings.CHART_DAG_MAX_ACTIVE_RUNS,
        default_args=default_args() if task_defaults is None else task_defaults,
        tags=[settings.TAG, f"platform:{config.platform}", f"frequency:{config.frequency.value}"],
        doc_md=doc_md(config),
        params={},
        deadline=deadlines_for(config),  # sync deadline + runtime degradation (builders.callbacks)
    ) as dag:

        # one XCom, return_value (the outcome's dict); a period waiting for the quota defers (builders.sync_task)
        SyncRankingOperator(config=config, outlets=[RANKINGS_ASSET, chart_rankings_asset(config.slug)])
    return dag


def broken_dag(row: Any, error: Exception) -> DAG:
    """A paused, unscheduled DAG that carries the config error to the UI (only this chart is hit)."""
    slug = str(getattr(row, "slug", "unknown"))
    safe = "".join(c if c.isalnum() or c in "_-." else "_" for c in slug) or "unknown"
    column = f" (column `{error.field}`)" if isinstance(error, ScheduleError) else ""
    message = f"chart_sync_schedule row {getattr(row, 'id', '?')} for chart {slug!r} is invalid: {error}{column}"
    with DAG(
        dag_id=settings.DAG_ID_PREFIX + safe,
        schedule=None,
        start_date=datetime(2024, 1, 1, tzinfo=UTC),
        is_paused_upon_creation=True,
        default_args=default_args(),
        tags=[settings.TAG, "config-error"],
        doc_md=f"## Configuration error\n\n{message}\n\nFix the row (`chartsync schedules ...` or the "
        "chart-sync admin page); the DAG is rebuilt at the next parse.",
    ) as dag:

        @task(task_id="config_error")
        def config_error() -> None:
            raise AirflowFailException(message)

        config_error()
    return dag


def doc_md(config: ScheduleConfig) -> str:
    if config.frequency is Frequency.CUSTOM:
        cadence = f"every {config.custom_interval_hours} hours (each run syncs the newest complete period)"
    elif config.frequency is Frequency.CRON:
        cadence = f"on cron `{config.cron_expression}` (each run syncs the newest complete period)"
    else:
        cadence = f"{config.frequency.value}; a run's data interval is the chart period it syncs"
    history = (
        f"catchup from **{config.history_start}** (fixed when the schedule was created): Airflow backfills "
        "the past year by itself, oldest first"
        if config.sync_historical_data else "no history: only periods from now on are synced"
    )
    if config.sync_immediately:
        first = ("**sync immediately**: the newest published period is synced by the first run, right "
                 "after the DAG appears; " + ("history follows by catchup" if config.sync_historical_data
                                            else "then one run per period"))
    else:
        first = ("**scheduled**: " + ("catchup runs the history oldest first; the newest period syncs in "
                                      "its turn" if config.sync_historical_data
                                      else "the first run happens at the next period boundary"))
    return (
        f"# {config.chart_name}\n\n"
        f"- chart: `{config.slug}` on **{config.platform}** ({config.country_code or 'global'}), "
        f"published {config.chart_frequency or 'unknown'}\n"
        f"- schedule: {cadence}\n- history: {history}\n- first sync: {first}\n"
        f"- track metadata: {'fetched' if config.fetch_track_metadata else 'not fetched'}\n\n"
        "Each run waits (rescheduling, bounded) until Soundcharts publishes the period, then fetches every "
        "page and upserts ranking, entries and tracks in one transaction with a `chart_sync_execution` row. "
        "Re-running a period changes nothing. When the Soundcharts quota runs out the task defers (no retry "
        "spent, no failure) until it is back; below the quota reserve, history waits and the newest period goes on."
    )


__all__ = ["build_dag", "build_dags", "chart_event_extra", "run_ref", "run_type", "task_result"]
