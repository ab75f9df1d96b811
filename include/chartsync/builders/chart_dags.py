"""The DAG factory: one sync DAG per row of ``chart_sync_schedule``.

The schedules are spread over ``settings.CHART_DAG_SHARDS`` DAG files (``dags/chart_sync_00.py``
...) by a hash of the slug, so each file stays quick to parse however many charts there are, and a
new schedule changes one file's DAGs only; a DAG's id never depends on its file. Reading the
config table at parse time is deliberate and kept cheap: only the file's shard, only the requested
DAG when Airflow's parsing context names one, and a last-known-good snapshot per shard
(``store.snapshot``) so a chart DB outage never makes DAGs vanish. A bad row yields a paused
placeholder DAG that shows the error: only that chart is affected.

The task body is a few lines: ``services.sync.sync_run`` decides and returns an outcome;
``task_result`` maps it to Airflow's terms.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import DAG, CronDataIntervalTimetable, DeltaDataIntervalTimetable, task
from airflow.sdk.exceptions import AirflowFailException, AirflowRescheduleException, AirflowSkipException

from chartsync import settings
from chartsync.builders.callbacks import deadlines_for
from chartsync.builders.defaults import RANKINGS_ASSET, chart_rankings_asset, default_args
from chartsync.core import calendar
from chartsync.core.calendar import Frequency
from chartsync.core.outcomes import (
    Failed,
    NothingToDo,
    NotPublishedYet,
    RunRef,
    Skipped,
    SyncOutcome,
    SyncResult,
    rankings_event_extra,
)
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

        # one XCom, return_value: a `-> dict` annotation alone would push every key as an XCom of its own
        # (a dozen execution-API calls a try, a third of a second at each period of a catchup); said
        # here, Airflow also need not evaluate the (string) annotation for every DAG (8 % of a parse)
        @task(task_id="sync_ranking", outlets=[RANKINGS_ASSET, chart_rankings_asset(config.slug)],
              multiple_outputs=False)
        def sync_ranking(**context: Any) -> dict:
            from chartsync.services import sync  # deferred: parse-time cost (the client loads the http provider)
            from chartsync.soundcharts.client import SoundchartsClient  # deferred: likewise

            period = sync.period_for_run(config, context.get("logical_date"), context.get("data_interval_end"))
            outcome = sync.sync_run(chart_engine(), SoundchartsClient(), config, run_ref(config, context), period,
                                    run_type=run_type(context))
            return task_result(outcome, config, context)

        sync_ranking()
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
        "Re-running a period changes nothing."
    )


# -- from Airflow's context to the service and back -------------------------------------------------
def run_ref(config: ScheduleConfig, context: dict) -> RunRef:
    ti = context["ti"]
    return RunRef(config.chart_id, ti.dag_id, ti.run_id, int(getattr(ti, "try_number", 1) or 1))


def run_type(context: dict) -> str | None:
    kind = getattr(context.get("dag_run"), "run_type", None)
    return getattr(kind, "value", kind)


def task_result(outcome: SyncOutcome, config: ScheduleConfig, context: dict) -> dict:
    """The outcome in Airflow's terms: a return value, a reschedule, or a failure without retry.

    Synced and skipped periods announce themselves on the rankings asset, whose event's extra names
    the execution rows and new tracks (the track metadata DAG reads it), and on the chart's own asset
    (``chart_event_extra``: for DAGs downstream of one chart).
    """
    if outcome.results and (outlets := context.get("outlet_events")) is not None:
        outlets[RANKINGS_ASSET].extra = rankings_event_extra(config.chart_id, config.slug, outcome.results)
        outlets[chart_rankings_asset(config.slug)].extra = chart_event_extra(config, outcome.results)
    if isinstance(outcome, NotPublishedYet):
        raise AirflowRescheduleException(outcome.retry_at)
    if isinstance(outcome, Failed):
        raise AirflowFailException(outcome.message)
    if isinstance(outcome, NothingToDo):
        raise AirflowSkipException(outcome.message)
    if isinstance(outcome, Skipped):
        return {"period": outcome.period.isoformat(), "status": "skipped"}
    return outcome.result.as_dict()


def chart_event_extra(config: ScheduleConfig, results: Sequence[SyncResult]) -> dict[str, Any]:
    """The extra of the chart's own asset event: the newest period stored, every period stored by
    this run (oldest first) and what they wrote."""
    periods = sorted(r.period for r in results)
    return {"chart_id": config.chart_id, "slug": config.slug, "period": periods[-1].isoformat(),
            "periods": [p.isoformat() for p in periods],
            "entries_written": sum(r.entries_written for r in results),
            "tracks_created": sum(r.tracks_created for r in results)}
