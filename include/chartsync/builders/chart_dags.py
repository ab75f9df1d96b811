"""The DAG factory: one sync DAG per row of ``chart_sync_schedule``.

Reading the config table at parse time is deliberate and kept cheap: one indexed
query, only the requested DAG when Airflow's parsing context names one, and a
last-known-good snapshot so a chart DB outage never makes DAGs vanish. A bad row
yields a paused placeholder DAG that shows the error: only that chart is affected.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from airflow.sdk import DAG, Asset, CronDataIntervalTimetable, DeltaDataIntervalTimetable, task
from airflow.sdk.exceptions import AirflowFailException, AirflowRescheduleException

from chartsync.services import alerts
from chartsync.core import calendar as freqs
from chartsync.core.calendar import Frequency
from chartsync.services.schedules import DAG_ID_PREFIX, ScheduleConfig, ScheduleError, load_rows

log = logging.getLogger(__name__)

OWNER = "chart-sync"
POOL = "soundcharts_api"
RANKINGS_ASSET = Asset("chartsync://rankings", group="chart-sync")
DEFAULT_MAX_ACTIVE_RUNS = 4
POKE_INTERVAL = timedelta(minutes=30)
# How long after its period ends a run keeps waiting for the API to publish it.
PUBLICATION_WAIT = {
    Frequency.DAILY: timedelta(hours=36),
    Frequency.WEEKLY: timedelta(days=4),
    Frequency.MONTHLY: timedelta(days=10),
}
DEFAULT_ARGS = {
    "owner": OWNER,
    "retries": 3,
    # CHARTSYNC_RETRY_DELAY_SECONDS shortens the first wait (tests use 1 s); the retry count stays 3.
    "retry_delay": timedelta(seconds=float(os.environ.get("CHARTSYNC_RETRY_DELAY_SECONDS", "30"))),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": timedelta(minutes=30),
    "execution_timeout": timedelta(minutes=30),
    "pool": POOL,
    "on_failure_callback": alerts.on_task_failure,  # called once, when no retry is left
}


# -- reading the config table --------------------------------------------------------------------
def snapshot_path() -> Path:
    default = Path(os.environ.get("AIRFLOW_HOME", "~/airflow")).expanduser() / "chartsync" / "schedules.json"
    return Path(os.environ.get("CHARTSYNC_SCHEDULE_SNAPSHOT", default))


def read_schedule_rows(dag_id: str | None = None) -> list[Any]:
    """Rows of the config table; the snapshot when the chart DB cannot be read."""
    from chartsync.store.engine import chart_engine

    slug = dag_id[len(DAG_ID_PREFIX):] if dag_id and dag_id.startswith(DAG_ID_PREFIX) else None
    if dag_id and slug is None:
        return []  # another file's DAG: build nothing
    try:
        rows = load_rows(chart_engine(), slug)
    except Exception as exc:  # the DB is down or unconfigured: keep the DAGs we knew
        rows = _read_snapshot(slug)
        log.warning("chart-sync: chart DB unreadable (%s); using the snapshot of %d schedules", exc, len(rows))
        return rows
    if slug is None:
        _write_snapshot(rows)
    return rows


def _write_snapshot(rows: list[Any]) -> None:
    path = snapshot_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps([dict(r._mapping) for r in rows], default=_json_default))
        tmp.replace(path)
    except OSError as exc:
        log.warning("chart-sync: cannot write the schedule snapshot %s: %s", path, exc)


def _read_snapshot(slug: str | None) -> list[Any]:
    try:
        raw = json.loads(snapshot_path().read_text())
    except (OSError, ValueError):
        return []
    rows = []
    for item in raw:
        if slug is None or item.get("slug") == slug:
            item["history_start"] = date.fromisoformat(item["history_start"]) if item.get("history_start") else None
            rows.append(SimpleNamespace(**item))
    return rows


def _json_default(value: Any) -> str:
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    raise TypeError(type(value).__name__)


# -- building DAGs ---------------------------------------------------------------------------------
def build_dags(dag_id: str | None = None) -> dict[str, DAG]:
    """Every chart DAG (or only ``dag_id``), keyed by dag_id; bad rows become placeholder DAGs."""
    dags: dict[str, DAG] = {}
    for row in read_schedule_rows(dag_id):
        try:
            config = ScheduleConfig.from_row(row)
            if config.dag_id in dags:
                raise ScheduleError("slug", f"{config.slug!r} collides with another chart's DAG id")
            dags[config.dag_id] = build_dag(config)
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
    return CronDataIntervalTimetable(freqs.cron_for(config.frequency, config.weekday), timezone="UTC")


def start_date_for(config: ScheduleConfig) -> datetime:
    """History or an immediate first sync start at history_start (fixed); a scheduled first sync
    without history starts at the period the schedule was created in, so its first run is the next tick."""
    if config.sync_historical_data or config.sync_immediately or not config.frequency.is_calendar:
        day = config.history_start
    else:
        day = freqs.align(config.frequency, config.created_on, config.weekday)
    return datetime.combine(day, datetime.min.time(), tzinfo=UTC)


def build_dag(config: ScheduleConfig) -> DAG:
    start = start_date_for(config)
    with DAG(
        dag_id=config.dag_id,
        description=f"Sync {config.chart_name} ({config.platform}) rankings from Soundcharts",
        schedule=timetable_for(config),
        start_date=start,
        catchup=config.sync_historical_data,
        is_paused_upon_creation=not config.is_active,
        max_active_runs=DEFAULT_MAX_ACTIVE_RUNS,
        default_args=DEFAULT_ARGS,
        tags=["chart-sync", f"platform:{config.platform}", f"frequency:{config.frequency.value}"],
        doc_md=doc_md(config),
        params={},
        deadline=alerts.deadlines_for(config),  # sync deadline + runtime degradation (see chartsync.services.alerts)
    ) as dag:

        @task(task_id="sync_ranking", outlets=[RANKINGS_ASSET])
        def sync_ranking(**context: Any) -> dict:
            return run_sync(config, context)

        sync_ranking()
    return dag


def broken_dag(row: Any, error: Exception) -> DAG:
    """A paused, unscheduled DAG that carries the config error to the UI (only this chart is hit)."""
    slug = str(getattr(row, "slug", "unknown"))
    safe = "".join(c if c.isalnum() or c in "_-." else "_" for c in slug) or "unknown"
    message = f"chart_sync_schedule row {getattr(row, 'id', '?')} for chart {slug!r} is invalid: {error}"
    with DAG(
        dag_id=DAG_ID_PREFIX + safe,
        schedule=None,
        start_date=datetime(2024, 1, 1, tzinfo=UTC),
        is_paused_upon_creation=True,
        default_args=DEFAULT_ARGS,
        tags=["chart-sync", "config-error"],
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


# -- the task body -------------------------------------------------------------------------------
def period_for_run(config: ScheduleConfig, context: dict) -> date | None:
    """The period a run syncs; ``None`` means the latest published one.

    Calendar schedules sync the period of the run's logical date. For scheduled and backfill
    runs that is ``data_interval_start``; a manual run triggered "for 2026-03-01" syncs
    2026-03-01 (Airflow gives such a run the interval *ending* at that date). Custom and cron
    schedules sync the newest complete period of the chart's own calendar.
    """
    logical, end = context.get("logical_date"), context.get("data_interval_end")
    if logical is None or end is None:
        return None
    if config.frequency.is_calendar:
        return freqs.align(config.frequency, logical.date(), config.weekday)
    return freqs.latest_complete_period(config.period_frequency, end, config.weekday).start


def first_catchup_run(config: ScheduleConfig, period: date | None, context: dict) -> bool:
    """The scheduled run of the first history period: where sync_immediately pulls the newest one forward."""
    run_type = getattr(context.get("dag_run"), "run_type", None)
    return (config.sync_immediately and config.sync_historical_data and config.frequency.is_calendar
            and period == config.history_start and getattr(run_type, "value", run_type) == "scheduled")


def run_sync(config: ScheduleConfig, context: dict) -> dict:
    from chartsync.store.engine import chart_engine
    from chartsync.store.executions import SKIPPED, RunRef, record_failure
    from chartsync.soundcharts.client import SoundchartsClient, SoundchartsNotFound
    from chartsync.services.sync import sync_period
    from chartsync.services.track_metadata import rankings_event_extra

    ti = context["ti"]
    run = RunRef(config.chart_id, ti.dag_id, ti.run_id, int(getattr(ti, "try_number", 1) or 1))
    period = period_for_run(config, context)
    engine = chart_engine()
    client = SoundchartsClient()
    synced = []

    def announce() -> None:  # the asset event names our execution rows and new tracks (track metadata DAG)
        if (outlets := context.get("outlet_events")) is not None:
            outlets[RANKINGS_ASSET].extra = rankings_event_extra(config.chart_id, config.slug, synced)

    log.info("Syncing %s period %s (run %s, try %s)", config.slug, period or "latest", run.run_id, run.try_number)
    if first_catchup_run(config, period, context):
        try:  # sync_immediately: the newest period first, then this run's (the oldest) period
            newest = sync_period(engine, client, run, config.slug, None)
            synced.append(newest)
            log.info("%s: sync_immediately synced the newest period %s first", config.slug, newest.period)
        except SoundchartsNotFound:
            log.warning("%s: no newest period published yet; continuing with %s", config.slug, period)
    try:
        result = sync_period(engine, client, run, config.slug, period)
    except SoundchartsNotFound as exc:
        if period is None:
            raise AirflowFailException(f"{config.slug}: no published ranking ({exc})") from exc
        period_end = datetime.combine(freqs.next_start(config.period_frequency, period), datetime.min.time(), UTC)
        waited_until = period_end + PUBLICATION_WAIT.get(config.period_frequency, timedelta(days=2))
        now = datetime.now(UTC)
        if now < waited_until:
            log.info("%s period %s is not published yet; checking again in %s (until %s)",
                     config.slug, period, POKE_INTERVAL, waited_until)
            raise AirflowRescheduleException(min(now + POKE_INTERVAL, waited_until)) from exc
        published = client.available_rankings(config.slug)
        if any(d[:10] > period.isoformat() for d in published):
            message = f"{config.slug}: the API skipped period {period} (later periods are published)"
            record_failure(engine, run, period, now, message, status=SKIPPED,
                           api_requests=client.request_count)
            log.warning(message)
            announce()
            return {"period": period.isoformat(), "status": SKIPPED}
        raise AirflowFailException(
            f"{config.slug}: period {period} still not published {waited_until - period_end} after it ended"
        ) from exc
    synced.append(result)
    announce()
    return {"period": result.period.isoformat(), "status": "success", "rankings_created": result.rankings_created,
            "rankings_updated": result.rankings_updated, "tracks_created": result.tracks_created,
            "tracks_updated": result.tracks_updated, "entries_written": result.entries_written,
            "api_requests": result.api_requests, "new_track_ids": list(result.new_track_ids),
            "execution_id": result.execution_id}
