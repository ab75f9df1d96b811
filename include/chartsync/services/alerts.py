"""Stakeholder alerts: sync deadlines, runtime degradation, final failures, overdue schedules, daily digest.

Every alert goes to the switched-on channels (``chartsync.seam.notifiers``) and is recorded in
``chart_sync_alert``; ``list_alerts`` serves the plugin's API and alert feed.

Where the code runs, and how it reaches the chart DB and the channels' connections:

- Deadline Alerts (``deadlines_for``) call ``on_deadline_missed`` as an ``AsyncCallback`` in the
  **triggerer**. There is no task context, but the triggerer's runner process has the Task SDK's
  supervisor channel, so ``BaseHook.get_connection`` / ``Variable.get`` (``chart_db``, the
  channels' connections, ``chartsync_alert_*``) are answered by the triggerer's supervisor
  (env vars, secrets backend, metadata DB). The blocking work (SQL, HTTP, SMTP) runs in a worker
  thread (``asyncio.to_thread``) so the triggerer's event loop never stalls; the SDK bridges
  those lookups back to the loop.
- ``on_task_failure`` is every task's ``on_failure_callback`` (``factory.DEFAULT_ARGS``): it runs
  in the task's own process after the last try, with the task's context.
- The digest runs as a task of ``chart_sync_alert_digest``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import quote

from sqlalchemy import Engine, func, insert, select
from sqlalchemy.exc import IntegrityError

from chartsync.store.tables import (
    chart,
    chart_ranking,
    chart_sync_alert,
    chart_sync_execution,
    chart_sync_schedule,
)
from chartsync.store import stats
from chartsync.core.calendar import Frequency

log = logging.getLogger(__name__)

DEADLINE, DEGRADATION, FAILURE, OVERDUE, DIGEST = "deadline", "degradation", "failure", "overdue", "digest"
KINDS = (DEADLINE, DEGRADATION, FAILURE, OVERDUE, DIGEST)
LABELS = {DEADLINE: "Sync deadline missed", DEGRADATION: "Sync slower than usual", FAILURE: "Sync failed",
          OVERDUE: "Schedule overdue", DIGEST: "Daily digest"}
DIGEST_DAG_ID = "chart_sync_alert_digest"
DAG_ID_PREFIX = "chart_sync__"

# How long after its period ends a period must be synced, unless the schedule's deadline_hours says.
DEFAULT_DEADLINE_HOURS = {Frequency.DAILY: 12.0, Frequency.WEEKLY: 48.0, Frequency.MONTHLY: 96.0}
INTERVAL_DEADLINE_FACTOR = 2  # custom and cron schedules: twice their interval
PERIOD_LENGTH = {
    Frequency.DAILY: timedelta(days=1),
    Frequency.WEEKLY: timedelta(days=7),
    # A Deadline Alert's interval is one fixed timedelta per DAG. Months are 28-31 days: take the
    # longest, so a deadline is never early (February's is up to 3 days late, never a false alarm).
    Frequency.MONTHLY: timedelta(days=31),
}
# Runtime degradation: a run still going after the DAG's recent average runtime plus this slack.
# The slack covers a late publication (the sync task re-checks every 30 minutes).
DEGRADATION_SLACK = timedelta(hours=1)
AVERAGE_RUNTIME_RUNS = 20  # the average is over the last 20 successful runs ...
AVERAGE_RUNTIME_MIN_RUNS = 5  # ... and only once there are 5 (a new chart has no baseline yet)
DISABLE_ENV = "CHARTSYNC_DEADLINE_ALERTS"  # "off": build chart DAGs without deadlines


# -- deadlines (pure) ---------------------------------------------------------------------------------
def _frequency(value: Frequency | str) -> Frequency:
    return value if isinstance(value, Frequency) else Frequency.parse(value)


def cron_interval(expression: str) -> timedelta:
    """The longest gap between two consecutive fires of a cron expression (a year of fires sampled)."""
    from croniter import croniter

    fires = croniter(expression, datetime(2024, 1, 1, tzinfo=UTC))
    times = [fires.get_next(datetime) for _ in range(60)]
    return max(b - a for a, b in zip(times, times[1:]))


def interval_length(frequency: Frequency | str, custom_interval_hours: int | None = None,
                    cron_expression: str | None = None) -> timedelta:
    """How long one period (one data interval) of a schedule lasts; the longest for months and crons."""
    freq = _frequency(frequency)
    if freq is Frequency.CUSTOM:
        return timedelta(hours=custom_interval_hours or 24)
    if freq is Frequency.CRON:
        return cron_interval(cron_expression) if cron_expression else PERIOD_LENGTH[Frequency.WEEKLY]
    return PERIOD_LENGTH[freq]


def default_deadline_hours(frequency: Frequency | str, custom_interval_hours: int | None = None,
                           cron_expression: str | None = None) -> float:
    freq = _frequency(frequency)
    if freq in DEFAULT_DEADLINE_HOURS:
        return DEFAULT_DEADLINE_HOURS[freq]
    length = interval_length(freq, custom_interval_hours, cron_expression)
    return INTERVAL_DEADLINE_FACTOR * length.total_seconds() / 3600


def deadline_hours(frequency: Frequency | str, configured: float | None,
                   custom_interval_hours: int | None = None, cron_expression: str | None = None) -> float:
    """The schedule's ``deadline_hours``, else the frequency's default."""
    if configured is not None and configured > 0:
        return float(configured)
    return default_deadline_hours(frequency, custom_interval_hours, cron_expression)


def sync_deadline(frequency: Frequency | str, configured: float | None,
                  custom_interval_hours: int | None = None, cron_expression: str | None = None) -> timedelta:
    """Logical date -> deadline: one period length (to the data interval's end) plus the allowed hours."""
    hours = deadline_hours(frequency, configured, custom_interval_hours, cron_expression)
    return interval_length(frequency, custom_interval_hours, cron_expression) + timedelta(hours=hours)


def deadlines_enabled(argv: list[str] | None = None) -> bool:
    """False under ``airflow dags test`` (and with CHARTSYNC_DEADLINE_ALERTS=off).

    Airflow 3.3.2's ``dag.test()`` ends a successful run of a DAG that has ``deadline=`` with
    ``AttributeError: 'dict' object has no attribute 'hex'`` (``DagRun.update_state`` looks the
    deadline alerts up by id, but the test copy of the DAG holds their definitions). A test run
    has no scheduler to watch deadlines anyway, so that process builds chart DAGs without them.
    Its sync of the DAG to the metadata DB then stores a version without deadlines until the
    dag-processor parses the file again (seconds to ``min_file_process_interval``).
    """
    if os.environ.get(DISABLE_ENV, "").strip().lower() in ("off", "false", "0", "no"):
        return False
    argv = sys.argv if argv is None else argv
    # argv[0]: .../bin/airflow, or .../airflow/__main__.py under `python -m airflow`
    return not (len(argv) >= 3 and "airflow" in argv[0] and argv[1:3] == ["dags", "test"])


def deadlines_for(config) -> list:
    """The Deadline Alerts of one chart DAG (a ``ScheduleConfig``): the sync deadline and degradation.

    Sync deadline: "period P must be synced within N hours of its data interval end". Airflow
    3.3.2 offers DAGRUN_LOGICAL_DATE, DAGRUN_QUEUED_AT, FIXED_DATETIME and AVERAGE_RUNTIME.
    Our timetables are data-interval ones, so a run's logical date *is* its data interval start,
    the start of the period it syncs (a manual run "for D" syncs period D: factory.period_for_run);
    DAGRUN_LOGICAL_DATE + (one period + N h) is therefore "N h after the period's end", for
    scheduled, catchup and backfill runs alike. DAGRUN_QUEUED_AT would measure from when the
    scheduler got round to the run (a late scheduler or a catchup queue would shift every
    deadline), and a custom reference would have to be registered through a plugin in the
    scheduler. Manual runs without a logical date get no sync deadline (Airflow skips it).

    Degradation: AVERAGE_RUNTIME (the DAG's recent successful runs) plus DEGRADATION_SLACK.
    """
    if not deadlines_enabled():
        return []
    from airflow.sdk import AsyncCallback, DeadlineAlert, DeadlineReference

    hours = deadline_hours(config.frequency, config.deadline_hours, config.custom_interval_hours,
                           config.cron_expression)
    about = {"schedule_id": config.schedule_id, "chart_id": config.chart_id, "chart": config.slug,
             "chart_name": config.chart_name, "frequency": config.frequency.value, "allowed_hours": hours}
    return [
        DeadlineAlert(
            reference=DeadlineReference.DAGRUN_LOGICAL_DATE,
            interval=sync_deadline(config.frequency, config.deadline_hours, config.custom_interval_hours,
                                   config.cron_expression),
            callback=AsyncCallback(on_deadline_missed, kwargs={"kind": DEADLINE, **about}),
            name="sync deadline",
        ),
        DeadlineAlert(
            reference=DeadlineReference.AVERAGE_RUNTIME(max_runs=AVERAGE_RUNTIME_RUNS,
                                                        min_runs=AVERAGE_RUNTIME_MIN_RUNS),
            interval=DEGRADATION_SLACK,
            callback=AsyncCallback(on_deadline_missed, kwargs={"kind": DEGRADATION, **about}),
            name="runtime degradation",
        ),
    ]


# -- rules (pure) -------------------------------------------------------------------------------------
def skip_reason(kind: str, *, run_type: str | None, deadline_time: datetime | None,
                interval_end: datetime | None, queued_at: datetime | None,
                schedule_created_at: datetime | None) -> str | None:
    """Why a missed deadline is not worth an alert (None: alert).

    History is not an SLA: catch-up of periods whose deadline passed before the schedule existed,
    backfills (gap healing, re-syncs) and manual runs started after the deadline had passed.
    """
    if run_type == "backfill":
        return "backfill run"
    if kind == DEADLINE and deadline_time is not None:
        if schedule_created_at is not None and deadline_time < schedule_created_at:
            return "history catch-up: the deadline had passed before the schedule was created"
        if run_type == "manual" and queued_at is not None and deadline_time <= queued_at:
            return "manual run started after the deadline had passed"
    if kind == DEGRADATION and interval_end is not None and schedule_created_at is not None \
            and interval_end < schedule_created_at:
        return "history catch-up"
    return None


# -- the alert and its text (pure) --------------------------------------------------------------------
@dataclass(frozen=True)
class Alert:
    kind: str
    summary: str  # what was missed, one line
    chart_id: int | None = None
    chart: str | None = None  # slug
    chart_name: str | None = None
    schedule_id: int | None = None
    dag_id: str | None = None
    run_id: str | None = None
    period: date | None = None
    details: tuple[str, ...] = field(default_factory=tuple)

    @property
    def title(self) -> str:
        subject = self.chart_name or self.chart or self.dag_id
        text = f"[chart-sync] {LABELS.get(self.kind, self.kind)}"
        text += f": {subject}" if subject else ""
        return text + (f", period {self.period.isoformat()}" if self.period else "")


def links(base_url: str, *, dag_id: str | None = None, run_id: str | None = None,
          schedule_id: int | None = None) -> dict[str, str]:
    """The Airflow UI page of the DAG run and the chart-sync page of the schedule."""
    base = (base_url or "").rstrip("/")
    found = {}
    if dag_id and run_id:
        found["dag_run"] = f"{base}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"
    elif dag_id:
        found["dag"] = f"{base}/dags/{quote(dag_id, safe='')}"
    if schedule_id is not None:
        found["schedule"] = f"{base}/chart-sync/ui/schedules/{schedule_id}"
    return found


def format_message(alert: Alert, base_url: str) -> str:
    """The text every channel sends and the alert table stores."""
    lines = [alert.title, alert.summary]
    if alert.chart and alert.chart_name:
        lines.append(f"- chart: {alert.chart_name} ({alert.chart})")
    lines += [f"- {d}" for d in alert.details]
    names = {"dag_run": "DAG run", "dag": "DAG", "schedule": "Schedule"}
    for key, url in links(base_url, dag_id=alert.dag_id, run_id=alert.run_id,
                          schedule_id=alert.schedule_id).items():
        lines.append(f"{names[key]}: {url}")
    return "\n".join(lines)


def payload(alert: Alert, text: str, base_url: str, created_at: datetime) -> dict[str, Any]:
    """The JSON document the webhook channel POSTs."""
    return {
        "kind": alert.kind, "title": alert.title, "summary": alert.summary, "message": text,
        "chart": {"id": alert.chart_id, "slug": alert.chart, "name": alert.chart_name},
        "schedule_id": alert.schedule_id, "dag_id": alert.dag_id, "run_id": alert.run_id,
        "period": alert.period.isoformat() if alert.period else None, "details": list(alert.details),
        "links": links(base_url, dag_id=alert.dag_id, run_id=alert.run_id, schedule_id=alert.schedule_id),
        "created_at": created_at.isoformat(),
    }


def ui_base_url() -> str:
    """``[api] base_url``: where the Airflow UI (and the chart-sync plugin) is reached."""
    from airflow.sdk.configuration import conf

    return conf.get("api", "base_url", fallback="") or ""


# -- raising, recording, listing ----------------------------------------------------------------------
def raise_alert(alert: Alert, engine: Engine | None = None, *, now: datetime | None = None,
                channels: list[str] | None = None) -> dict[str, str]:
    """Deliver to every switched-on channel, then record the alert with each channel's outcome.

    Neither a failing channel nor an unreachable chart DB stops the rest; both are logged.
    """
    from chartsync.seam import notifiers

    now = now or datetime.now(UTC)
    base_url = ui_base_url()
    text = format_message(alert, base_url)
    log.warning("chart-sync alert: %s", text.replace("\n", " | "))
    try:
        outcome = notifiers.deliver(alert.title, text, payload(alert, text, base_url, now), channels)
    except Exception as exc:  # reading the channel settings failed
        log.exception("chart-sync: alert channels unavailable")
        outcome = {"error": f"{type(exc).__name__}: {exc}"[:500]}
    try:
        record_alert(engine or _chart_engine(), alert, text, outcome, now)
    except Exception:
        log.exception("chart-sync: could not record the %s alert for %s in chart_sync_alert",
                      alert.kind, alert.chart or alert.dag_id)
    return outcome


def record_alert(engine: Engine, alert: Alert, message: str, channels: Mapping[str, str],
                 now: datetime | None = None) -> int:
    values = {"kind": alert.kind, "chart_id": alert.chart_id, "dag_id": alert.dag_id, "run_id": alert.run_id,
              "period": alert.period, "message": message, "channels": dict(channels),
              "created_at": now or datetime.now(UTC)}
    try:
        with engine.begin() as conn:
            return conn.execute(insert(chart_sync_alert).values(**values)).inserted_primary_key[0]
    except IntegrityError:
        if alert.chart_id is None:
            raise
    # the chart was deleted meanwhile: keep the alert, without the chart (as ON DELETE SET NULL would)
    with engine.begin() as conn:
        inserted = conn.execute(insert(chart_sync_alert).values(**values | {"chart_id": None}))
        return inserted.inserted_primary_key[0]


def list_alerts(engine: Engine, kind: str | None = None, chart_id: int | None = None,
                since: datetime | None = None, limit: int = 100, offset: int = 0) -> tuple[list[dict], int]:
    """A page of recorded alerts, newest first, and how many match in total.

    Raises ValueError for an unknown kind or a limit/offset out of range.
    """
    if kind is not None and kind not in KINDS:
        raise ValueError(f"kind: {kind!r} is not one of {', '.join(KINDS)}")
    if not 1 <= limit <= 1000 or offset < 0:
        raise ValueError("limit must be 1..1000 and offset >= 0")
    conditions = []
    if kind is not None:
        conditions.append(chart_sync_alert.c.kind == kind)
    if chart_id is not None:
        conditions.append(chart_sync_alert.c.chart_id == chart_id)
    if since is not None:
        conditions.append(chart_sync_alert.c.created_at >= _aware(since).astimezone(UTC))
    query = (
        select(chart_sync_alert, chart.c.slug, chart.c.name, chart_sync_schedule.c.id.label("schedule_id"))
        .outerjoin(chart, chart.c.id == chart_sync_alert.c.chart_id)
        .outerjoin(chart_sync_schedule, chart_sync_schedule.c.chart_id == chart_sync_alert.c.chart_id)
        .where(*conditions)
        .order_by(chart_sync_alert.c.created_at.desc(), chart_sync_alert.c.id.desc())
        .limit(limit).offset(offset)
    )
    with engine.connect() as conn:
        total = conn.execute(
            select(func.count()).select_from(chart_sync_alert).where(*conditions)).scalar_one()
        rows = conn.execute(query).all()
    base_url = ui_base_url()
    return [{
        "id": r.id, "kind": r.kind, "chart_id": r.chart_id, "chart": r.slug, "chart_name": r.name,
        "schedule_id": r.schedule_id, "dag_id": r.dag_id, "run_id": r.run_id, "period": r.period,
        "message": r.message, "channels": r.channels or {}, "created_at": _aware(r.created_at),
        "links": links(base_url, dag_id=r.dag_id, run_id=r.run_id, schedule_id=r.schedule_id),
    } for r in rows], total


# -- deadline callbacks (triggerer) -------------------------------------------------------------------
async def on_deadline_missed(*, kind: str, schedule_id: int, chart_id: int, chart: str, chart_name: str,
                             frequency: str, allowed_hours: float, context: dict | None = None) -> str:
    """AsyncCallback of the chart DAGs' Deadline Alerts; runs in the triggerer (see the module doc).

    Returns a string: Airflow 3.3.2 stores the result in the ``callback.output`` text column, and a
    result it cannot store there (a dict) kills the triggerer's runner process.
    """
    alert = await asyncio.to_thread(
        handle_deadline_miss, kind, context or {}, schedule_id=schedule_id, chart_id=chart_id, chart=chart,
        chart_name=chart_name, frequency=frequency, allowed_hours=allowed_hours)
    if alert is None:
        return f"no {kind} alert for {chart} (see the triggerer log)"
    return f"{kind} alert raised for {chart}"


def handle_deadline_miss(kind: str, context: Mapping[str, Any], *, schedule_id: int, chart_id: int,
                         chart: str, chart_name: str, frequency: str, allowed_hours: float,
                         engine: Engine | None = None) -> Alert | None:
    """Turn a missed deadline into an alert, unless it is history (``skip_reason``) or the period is
    stored already (synced by another run, e.g. sync_immediately's first run)."""
    run = context.get("dag_run") or {}
    deadline_time = _as_datetime((context.get("deadline") or {}).get("deadline_time"))
    start = _as_datetime(run.get("logical_date") or run.get("data_interval_start"))  # the period it syncs
    interval_end = _as_datetime(run.get("data_interval_end"))
    period = start.date() if start else None
    try:
        engine = engine or _chart_engine()
        created_at = _schedule_created_at(engine, schedule_id)
    except Exception as exc:
        log.warning("chart-sync: chart DB unavailable for the %s alert of %s: %s", kind, chart, exc)
        engine, created_at = None, None
    reason = skip_reason(kind, run_type=run.get("run_type"), deadline_time=deadline_time,
                         interval_end=interval_end, queued_at=_as_datetime(run.get("queued_at")),
                         schedule_created_at=created_at)
    if reason is None and kind == DEADLINE and engine is not None and period is not None \
            and Frequency.parse(frequency).is_calendar and _ranking_stored(engine, chart_id, period):
        reason = "the period is stored already"
    if reason:
        log.info("chart-sync: %s deadline of %s run %s passed; no alert (%s)", kind, chart,
                 run.get("dag_run_id"), reason)
        return None
    state = run.get("state") or "unknown"
    when = f"{deadline_time:%Y-%m-%d %H:%M} UTC" if deadline_time else "its deadline"
    if kind == DEADLINE:
        end = f" ({interval_end:%Y-%m-%d %H:%M} UTC)" if interval_end else ""
        summary = (f"Period {period or '?'} was not synced within {allowed_hours:g} h of its end{end}; "
                   f"the run was {state} at the deadline, {when}.")
    else:
        summary = (f"The sync has been running longer than this chart's average runtime of its last "
                   f"{AVERAGE_RUNTIME_RUNS} successful runs plus {_human(DEGRADATION_SLACK)}; the run was "
                   f"{state} at {when}.")
    alert = Alert(kind=kind, summary=summary, chart_id=chart_id, chart=chart, chart_name=chart_name,
                  schedule_id=schedule_id, dag_id=run.get("dag_id"), run_id=run.get("dag_run_id"),
                  period=period, details=(f"run type: {run.get('run_type')}", f"deadline: {when}"))
    raise_alert(alert, engine)
    return alert


# -- failure callback (task) --------------------------------------------------------------------------
def on_task_failure(context: Mapping[str, Any]) -> None:
    """``on_failure_callback`` of every chart-sync task (``factory.DEFAULT_ARGS``).

    Airflow calls it only when the task instance has failed for good: its retries are used up,
    or the failure must not be retried (``AirflowFailException``). A try that will be retried
    goes to ``on_retry_callback`` instead, so stakeholders hear of a failure once, at the end.
    """
    try:
        alert = failure_alert(context)
        if alert is not None:
            raise_alert(alert)
    except Exception:  # an alert problem must never hide the task's own failure
        log.exception("chart-sync: the failure alert could not be raised")


def failure_alert(context: Mapping[str, Any], engine: Engine | None = None) -> Alert | None:
    ti = context.get("ti") or context.get("task_instance")
    state = str(getattr(ti, "state", "") or "")
    if state.endswith("up_for_retry"):
        return None
    dag_id = getattr(ti, "dag_id", None) or getattr(context.get("dag"), "dag_id", None)
    run_id = getattr(ti, "run_id", None)
    tries = int(getattr(ti, "try_number", 0) or 0)
    error = str(context.get("exception") or context.get("reason") or "unknown error")
    chart_row, execution = None, None
    try:
        engine = engine or _chart_engine()
        chart_row, execution = _chart_and_execution(engine, dag_id, run_id)
    except Exception as exc:
        log.warning("chart-sync: chart DB unavailable for the failure alert of %s: %s", dag_id, exc)
    start = context.get("logical_date") or context.get("data_interval_start")
    period = execution.period if execution is not None and execution.period else (
        start.date() if isinstance(start, datetime) else None)
    what = f"{getattr(ti, 'task_id', 'task')} failed" + (f" after {tries} {'try' if tries == 1 else 'tries'}"
                                                         if tries else "")
    return Alert(
        kind=FAILURE, summary=f"{what}, no retries left: {error[:500]}",
        chart_id=chart_row.id if chart_row else None, chart=chart_row.slug if chart_row else None,
        chart_name=chart_row.name if chart_row else None,
        schedule_id=chart_row.schedule_id if chart_row else None,
        dag_id=dag_id, run_id=run_id, period=period,
        details=((f"last recorded error: {execution.error[:500]}",)
                 if execution is not None and execution.error else ()),
    )


# -- the daily digest ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Digest:
    since: datetime
    until: datetime
    overdue: list[dict]
    alerts: dict[str, list[dict]]  # failure / deadline / degradation alerts of the window
    failed_tries: int


def overdue_schedules(engine: Engine, now: datetime) -> list[dict]:
    """Active schedules overdue by the one rule the API and pages use too (``stats.is_overdue``)."""
    executions = chart_sync_execution.c
    last_ok = (select(executions.chart_id, func.max(executions.completed_at).label("at"))
               .where(executions.status == "success")
               .group_by(executions.chart_id).subquery())
    query = (select(chart_sync_schedule, chart.c.slug, chart.c.name, last_ok.c.at.label("last_success"))
             .join(chart, chart.c.id == chart_sync_schedule.c.chart_id)
             .outerjoin(last_ok, last_ok.c.chart_id == chart_sync_schedule.c.chart_id)
             .where(chart_sync_schedule.c.is_active.is_(True)).order_by(chart.c.slug))
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return [{"schedule_id": r.id, "chart_id": r.chart_id, "chart": r.slug, "chart_name": r.name,
             "frequency": r.sync_frequency, "created_at": _aware(r.created_at),
             "last_success": _aware(r.last_success) if r.last_success else None}
            for r in rows if stats.is_overdue(
                is_active=True, frequency=r.sync_frequency, last_success_at=r.last_success and _aware(r.last_success),
                created_at=_aware(r.created_at), now=now, custom_interval_hours=r.custom_interval_hours,
                cron_expression=r.cron_expression)]


def collect_digest(engine: Engine, now: datetime, window: timedelta = timedelta(days=1)) -> Digest:
    since = now - window
    rows, _ = list_alerts(engine, since=since, limit=1000)
    alerts = {k: [r for r in rows if r["kind"] == k] for k in (FAILURE, DEADLINE, DEGRADATION)}
    with engine.connect() as conn:
        executions = chart_sync_execution.c
        failed = conn.execute(select(func.count()).select_from(chart_sync_execution).where(
            executions.status == "failed", executions.started_at >= since)).scalar_one()
    return Digest(since, now, overdue_schedules(engine, now), alerts, failed)


def digest_alert(digest: Digest, base_url: str) -> Alert:
    """One alert that lists overdue schedules, final failures and deadline misses of the window."""
    counts = [f"{len(digest.overdue)} overdue schedule(s)", f"{len(digest.alerts[FAILURE])} failure(s)",
              f"{len(digest.alerts[DEADLINE])} deadline miss(es)",
              f"{len(digest.alerts[DEGRADATION])} slow run(s)", f"{digest.failed_tries} failed try(ies)"]
    details = []
    for o in digest.overdue:
        last = f"last success {o['last_success']:%Y-%m-%d %H:%M} UTC" if o["last_success"] else "never synced"
        page = links(base_url, schedule_id=o["schedule_id"])["schedule"]
        details.append(f"overdue: {o['chart_name']} ({o['chart']}, {o['frequency']}), {last}: {page}")
    for kind in (FAILURE, DEADLINE, DEGRADATION):
        for a in digest.alerts[kind]:
            period = f", period {a['period']}" if a["period"] else ""
            where = a["links"].get("dag_run") or a["links"].get("dag") or ""
            details.append(f"{LABELS[kind].lower()}: {a['chart_name'] or a['chart'] or a['dag_id']}{period} "
                           f"at {a['created_at']:%Y-%m-%d %H:%M} UTC {where}".rstrip())
    window = f"{digest.since:%Y-%m-%d %H:%M} - {digest.until:%Y-%m-%d %H:%M} UTC"
    summary = f"{window}: " + ", ".join(counts) + ("." if details else "; nothing to report.")
    return Alert(kind=DIGEST, summary=summary, dag_id=DIGEST_DAG_ID, details=tuple(details))


def run_digest(engine: Engine, now: datetime | None = None) -> dict:
    """Alert each newly overdue schedule once, then send and record the digest."""
    now = now or datetime.now(UTC)
    digest = collect_digest(engine, now)
    newly = [o for o in digest.overdue if not _alerted_since(engine, o["chart_id"], o["last_success"] or
                                                             o["created_at"])]
    for o in newly:
        last = (f"since {o['last_success']:%Y-%m-%d %H:%M} UTC" if o["last_success"]
                else "since it was created")
        raise_alert(Alert(kind=OVERDUE, summary=f"No successful sync {last}: longer than one "
                                                 f"{o['frequency']} period plus its grace.",
                          chart_id=o["chart_id"], chart=o["chart"], chart_name=o["chart_name"],
                          schedule_id=o["schedule_id"], dag_id=DAG_ID_PREFIX + o["chart"]), engine, now=now)
    channels = raise_alert(digest_alert(digest, ui_base_url()), engine, now=now)
    result = {"overdue": [o["chart"] for o in digest.overdue], "new_overdue_alerts": len(newly),
              "failures": len(digest.alerts[FAILURE]), "deadline_misses": len(digest.alerts[DEADLINE]),
              "slow_runs": len(digest.alerts[DEGRADATION]), "failed_tries": digest.failed_tries,
              "channels": channels}
    log.info("chart-sync digest: %s", result)
    return result


def build_digest_dag():
    from airflow.sdk import DAG, CronTriggerTimetable, task

    from chartsync.builders.chart_dags import DEFAULT_ARGS

    with DAG(
        dag_id=DIGEST_DAG_ID,
        description="Daily alert digest: overdue schedules, failures and deadline misses of the last day",
        # no start_date: the first run is the next tick, not an immediate one when the DAG appears
        schedule=CronTriggerTimetable("0 7 * * *", timezone="UTC"),
        catchup=False,
        max_active_runs=1,
        is_paused_upon_creation=False,
        default_args={**DEFAULT_ARGS, "pool": "default_pool"},  # no Soundcharts call: keep the API pool free
        tags=["chart-sync", "alerts"],
        doc_md=(
            "# Alert digest\n\nDaily at 07:00 UTC (and on demand). Lists overdue schedules (no successful "
            "sync for longer than one period plus its grace), final sync failures and deadline misses of "
            "the last 24 hours; raises a one-off `overdue` alert for each newly overdue schedule. Sent to "
            "the channels of the Variable `chartsync_alert_channels` and recorded in `chart_sync_alert`."
        ),
    ) as dag:

        @task(task_id="send_digest")
        def send_digest() -> dict:
            return run_digest(_chart_engine())

        send_digest()
    return dag


# -- small helpers ------------------------------------------------------------------------------------
def _chart_engine() -> Engine:
    from chartsync.store.engine import chart_engine

    return chart_engine()


def _aware(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; every timestamp chart-sync writes is UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _as_datetime(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return _aware(value)
    return _aware(datetime.fromisoformat(str(value).replace("Z", "+00:00")))


def _human(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes // 60} h" if minutes % 60 == 0 else f"{minutes} min"


def _schedule_created_at(engine: Engine, schedule_id: int) -> datetime | None:
    with engine.connect() as conn:
        value = conn.execute(select(chart_sync_schedule.c.created_at)
                             .where(chart_sync_schedule.c.id == schedule_id)).scalar()
    return _aware(value) if value else None


def _ranking_stored(engine: Engine, chart_id: int, period: date) -> bool:
    with engine.connect() as conn:
        return conn.execute(select(chart_ranking.c.id).where(
            chart_ranking.c.chart_id == chart_id, chart_ranking.c.period == period)).first() is not None


def _chart_and_execution(engine: Engine, dag_id: str | None, run_id: str | None):
    """The chart (with its schedule id) a chart DAG syncs, and the run's newest execution row."""
    if not dag_id or not dag_id.startswith(DAG_ID_PREFIX):
        return None, None
    with engine.connect() as conn:
        chart_row = conn.execute(
            select(chart.c.id, chart.c.slug, chart.c.name, chart_sync_schedule.c.id.label("schedule_id"))
            .outerjoin(chart_sync_schedule, chart_sync_schedule.c.chart_id == chart.c.id)
            .where(chart.c.slug == dag_id[len(DAG_ID_PREFIX):])).first()
        execution = conn.execute(
            select(chart_sync_execution.c.period, chart_sync_execution.c.error)
            .where(chart_sync_execution.c.dag_id == dag_id, chart_sync_execution.c.run_id == run_id)
            .order_by(chart_sync_execution.c.id.desc())).first() if run_id else None
    return chart_row, execution


def _alerted_since(engine: Engine, chart_id: int, since: datetime) -> bool:
    with engine.connect() as conn:
        return conn.execute(select(chart_sync_alert.c.id).where(
            chart_sync_alert.c.kind == OVERDUE, chart_sync_alert.c.chart_id == chart_id,
            chart_sync_alert.c.created_at >= since)).first() is not None
