"""Stakeholder alerts: raise one (deliver to the channels, record it), turn a missed deadline or a
final failure into one, and the daily digest with its overdue alerts.

Every alert goes to the switched-on channels (``seam.notifiers``) and is recorded in
``chart_sync_alert`` (``store.alerts``); ``store.alerts.list_alerts`` serves the feed.

Where the code runs (the callbacks themselves are in ``builders.callbacks``):

- Deadline Alerts call ``handle_deadline_miss`` from the **triggerer** (it finds the chart by the run's
  DAG; history, catchup and backfill runs, gets no alert). There is no task context,
  but the triggerer's runner process has the Task SDK's supervisor channel, so connection and
  Variable lookups (``chart_db``, the channels' connections, ``chartsync_alert_*``) are answered
  by the triggerer's supervisor. The callback runs this blocking work (SQL, HTTP, SMTP) in a worker
  thread so the triggerer's event loop never stalls.
- A task's final failure becomes an alert through ``services.failures`` (from the task's failure
  callback, the plugin's listeners in the task, the scheduler and the api-server, and the
  reconciliation with Airflow's state); ``raise_alert_once`` records it before sending, so the
  first of them raises it and the others find it recorded.
- The digest runs as a task of ``chart_sync_alert_digest``.
- A quota episode (syncs waiting for the Soundcharts quota) gets one "exhausted" alert when the first
  sync waits (``quota_waiting``) and one "restored" alert when a reading shows the reserve back
  (``quota_reading``); ``chart_sync_quota_episode`` decides which caller sends each.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from chartsync.core.alerts import (
    DEADLINE,
    DEGRADATION,
    FAILURE,
    OVERDUE,
    Alert,
    DeadlineOutcome,
    Digest,
    digest_alert,
    format_message,
    human,
    payload,
    quota_exhausted_alert,
    quota_restored_alert,
    skip_reason,
)
from chartsync.core.calendar import AVERAGE_RUNTIME_RUNS, DEGRADATION_SLACK, Frequency
from chartsync.core.paging import Page, PageRequest
from chartsync.core.quota import below_reserve
from chartsync.core.rules import is_overdue
from chartsync.core.schedule import dag_id_for, slug_of
from chartsync.core.timestamps import as_utc, parse_utc
from chartsync.seam import metrics, notifiers
from chartsync.seam.config import ui_base_url
from chartsync import settings
from chartsync.store import executions, quality_reports
from chartsync.store import alerts as alert_store
from chartsync.store.engine import chart_engine

log = logging.getLogger(__name__)


def raise_alert(alert: Alert, engine: Engine | None = None, *, now: datetime | None = None,
                channels: list[str] | None = None) -> dict[str, str]:
    """Deliver to every switched-on channel, then record the alert with each channel's outcome.

    Neither a failing channel nor an unreachable chart DB stops the rest; both are logged.
    """
    now = now or datetime.now(UTC)
    base_url = ui_base_url()
    text = format_message(alert, base_url)
    outcome = _deliver(alert, text, base_url, now, channels)
    try:
        alert_store.record_alert(engine or chart_engine(), alert, text, outcome, now)
    except Exception:
        log.exception("chart-sync: could not record the %s alert for %s in chart_sync_alert",
                      alert.kind, alert.chart or alert.dag_id)
    return outcome


def _deliver(alert: Alert, text: str, base_url: str, now: datetime,
             channels: list[str] | None) -> dict[str, str]:
    """Log the alert and send it to the channels; each channel's outcome, or the one error of reading
    the channels' settings (then nothing is sent)."""
    log.warning("chart-sync alert: %s", text.replace("\n", " | "))
    try:
        outcome = notifiers.deliver(alert.title, text, payload(alert, text, base_url, now), channels)
    except Exception as exc:  # reading the channel settings failed
        log.exception("chart-sync: alert channels unavailable")
        metrics.incr(metrics.ALERTS_SENT, channel="none", kind=alert.kind, status="failed")
        return {"error": f"{type(exc).__name__}: {exc}"[:500]}
    for name, result in outcome.items():
        # a channel's name comes from a Variable: only the known names become tag values
        metrics.incr(metrics.ALERTS_SENT, channel=name if name in notifiers.CHANNELS else "other", kind=alert.kind,
                     status="sent" if result == notifiers.SENT else "failed")
    return outcome


def raise_alert_once(alert: Alert, engine: Engine, *, task_id: str, try_number: int, now: datetime | None = None,
                     channels: list[str] | None = None) -> dict[str, str] | None:
    """Raise the alert about one task try unless that try has had it: None then.

    The alert is recorded first (``store.alerts.claim_alert``: one per kind and try, whichever
    process gets there first), then delivered, then its channels' outcomes are stored. An
    unreachable chart DB raises before anything is sent, so the caller can try again later
    without ever sending twice.
    """
    now = now or datetime.now(UTC)
    base_url = ui_base_url()
    text = format_message(alert, base_url)
    alert_id = alert_store.claim_alert(engine, alert, text, task_id=task_id, try_number=try_number, now=now)
    if alert_id is None:
        log.info("chart-sync: the %s alert for %s %s try %s was raised already", alert.kind, alert.dag_id,
                 alert.run_id, try_number)
        return None
    outcome = _deliver(alert, text, base_url, now, channels)
    try:
        alert_store.record_delivery(engine, alert_id, outcome)
    except Exception:
        log.exception("chart-sync: could not store the channels' outcome of alert %s", alert_id)
    return outcome


# -- quota episodes -------------------------------------------------------------------------------------
def quota_waiting(engine: Engine, *, remaining: int | None, seen_at: datetime | None, started_waiting: bool,
                  now: datetime | None = None) -> dict[str, str] | None:
    """A sync waits for the quota: open the episode and raise its "exhausted" alert (the first waiting sync
    does; None for the others), and count the period when it ``started_waiting`` now (not on a re-wait)."""
    now = now or datetime.now(UTC)
    outcome = None
    if alert_store.open_quota_episode(engine, now, remaining) is not None:
        alert = quota_exhausted_alert(remaining=remaining, seen_at=seen_at, reserve=settings.quota_reserve(),
                                      waiting=executions.waiting_count(engine),
                                      recheck_seconds=settings.quota_recheck_seconds())
        outcome = raise_alert(alert, engine, now=now)
    if started_waiting:
        alert_store.count_quota_wait(engine)
    return outcome


def quota_reading(engine: Engine, *, remaining: int | None, seen_at: datetime | None,
                  now: datetime | None = None) -> dict[str, str] | None:
    """A reading of the quota: when it shows the reserve back (at least ``quota_reserve()``, and some), close
    the open episode and raise its "restored" alert (one caller does; None for the others and when nothing
    was waiting). Cheap when no episode is open: one indexed read."""
    if remaining is None or remaining <= 0 or below_reserve(remaining, settings.quota_reserve()):
        return None
    if alert_store.open_quota_episode_started(engine) is None:
        return None
    now = now or datetime.now(UTC)
    episode = alert_store.close_quota_episode(engine, now, remaining)
    if episode is None:
        return None
    alert = quota_restored_alert(remaining=remaining, seen_at=seen_at, started_at=as_utc(episode.started_at),
                                 waited=episode.periods_waited, now=now)
    return raise_alert(alert, engine, now=now)


def handle_deadline_miss(kind: str, context: Mapping[str, Any], *, frequency: str, allowed_hours: float,
                         engine: Engine | None = None) -> DeadlineOutcome:
    """Turn a missed deadline into an alert, unless it is history (``skip_reason``: catchup and backfill
    runs), the chart has no schedule any more, or the period is stored already (synced by another run,
    e.g. sync_immediately's first run).

    The chart and its schedule are found by the run's DAG (``chart_sync__<slug>``) when the deadline
    passes, so the alert names the schedule as it is now, also after the schedule was removed and added
    again. ``frequency`` and ``allowed_hours`` describe the deadline itself, parsed with the run's DAG.
    """
    run = context.get("dag_run") or {}
    dag_id = run.get("dag_id")
    slug = slug_of(dag_id)
    deadline_time = parse_utc((context.get("deadline") or {}).get("deadline_time"))
    start = parse_utc(run.get("logical_date") or run.get("data_interval_start"))  # the period it syncs
    interval_start, interval_end = parse_utc(run.get("data_interval_start")), parse_utc(run.get("data_interval_end"))
    period = start.date() if start else None
    found, chart_row = False, None
    try:
        engine = engine or chart_engine()
        chart_row = alert_store.chart_of_dag(engine, dag_id)
        found = True
    except Exception as exc:  # alert anyway, without the schedule's page: a chart DB outage is news too
        log.warning("chart-sync: chart DB unavailable for the %s alert of %s: %s", kind, dag_id, exc)
        engine = None
    created_at = as_utc(chart_row.schedule_created_at) if chart_row and chart_row.schedule_created_at else None
    reason = skip_reason(kind, run_type=run.get("run_type"), deadline_time=deadline_time,
                         interval_start=interval_start, interval_end=interval_end,
                         queued_at=parse_utc(run.get("queued_at")), frequency=frequency,
                         schedule_created_at=created_at)
    if reason is None and found and (chart_row is None or chart_row.schedule_id is None):
        reason = "the chart has no sync schedule any more"
    if reason is None and kind == DEADLINE and engine is not None and period is not None \
            and Frequency.parse(frequency).is_calendar and alert_store.ranking_stored(engine, chart_row.id, period):
        reason = "the period is stored already"
    if reason:
        log.info("chart-sync: %s deadline of %s run %s passed; no alert (%s)", kind, dag_id,
                 run.get("dag_run_id"), reason)
        return DeadlineOutcome(kind, slug, reason=reason)
    state = run.get("state") or "unknown"
    when = f"{deadline_time:%Y-%m-%d %H:%M} UTC" if deadline_time else "its deadline"
    if kind == DEADLINE:
        end = f" ({interval_end:%Y-%m-%d %H:%M} UTC)" if interval_end else ""
        summary = (f"Period {period or '?'} was not synced within {allowed_hours:g} h of its end{end}; "
                   f"the run was {state} at the deadline, {when}.")
    else:
        summary = (f"The sync has been running longer than this chart's average runtime of its last "
                   f"{AVERAGE_RUNTIME_RUNS} successful runs plus {human(DEGRADATION_SLACK)}; the run was "
                   f"{state} at {when}.")
    alert = Alert(kind=kind, summary=summary, chart=slug, dag_id=dag_id, run_id=run.get("dag_run_id"),
                  period=period, details=(f"run type: {run.get('run_type')}", f"deadline: {when}"),
                  **({"chart_id": chart_row.id, "chart_name": chart_row.name, "schedule_id": chart_row.schedule_id}
                     if chart_row else {}))
    raise_alert(alert, engine)
    return DeadlineOutcome(kind, slug, alert=alert)


def failure_alert(context: Mapping[str, Any], engine: Engine | None = None) -> Alert | None:
    """The failure alert of a failure callback's context; None while a retry is left."""
    ti = context.get("ti") or context.get("task_instance")
    state = str(getattr(ti, "state", "") or "")
    if state.endswith("up_for_retry"):
        return None
    dag_id = getattr(ti, "dag_id", None) or getattr(context.get("dag"), "dag_id", None)
    run_id = getattr(ti, "run_id", None)
    error = str(context.get("exception") or context.get("reason") or "unknown error")
    chart_row, execution = None, None
    try:
        engine = engine or chart_engine()
        chart_row, execution = alert_store.chart_and_execution(engine, dag_id, run_id)
    except Exception as exc:
        log.warning("chart-sync: chart DB unavailable for the failure alert of %s: %s", dag_id, exc)
    start = context.get("logical_date") or context.get("data_interval_start")
    period = execution.period if execution is not None and execution.period else (
        start.date() if isinstance(start, datetime) else None)
    return task_failure_alert(dag_id=dag_id, run_id=run_id, task_id=getattr(ti, "task_id", None) or "task",
                              try_number=int(getattr(ti, "try_number", 0) or 0), error=error, period=period,
                              chart_row=chart_row, last_error=execution.error if execution is not None else None)


def task_failure_alert(*, dag_id: str | None, run_id: str | None, task_id: str, try_number: int, error: str,
                       period: date | None, chart_row: Any = None, last_error: str | None = None,
                       state: str = "failed") -> Alert:
    """The failure alert of a task instance that failed for good (``chart_row``: its chart, if any)."""
    what = f"{task_id} {'failed' if state == 'failed' else state}" + (
        f" after {try_number} {'try' if try_number == 1 else 'tries'}" if try_number else "")
    return Alert(
        kind=FAILURE, summary=f"{what}, no retries left: {error[:500]}",
        chart_id=chart_row.id if chart_row else None, chart=chart_row.slug if chart_row else None,
        chart_name=chart_row.name if chart_row else None,
        schedule_id=chart_row.schedule_id if chart_row else None,
        dag_id=dag_id, run_id=run_id, period=period,
        details=(f"last recorded error: {last_error[:500]}",) if last_error and last_error != error else (),
    )


def list_alerts(engine: Engine, kind: str | None = None, chart_id: int | None = None,
                since: datetime | None = None, paging: PageRequest = PageRequest(100)) -> Page:
    """The alert feed, newest first, with links into the Airflow UI."""
    return alert_store.list_alerts(engine, kind, chart_id, since, paging, base_url=ui_base_url())


def overdue_schedules(engine: Engine, now: datetime) -> list[dict]:
    """Active schedules overdue by the one rule the API and pages use too (``core.rules.is_overdue``)."""
    found = []
    for r in alert_store.overdue_candidates(engine):
        last = as_utc(r.last_success_at) if r.last_success_at else None
        if is_overdue(is_active=True, frequency=r.sync_frequency, last_success_at=last,
                      created_at=as_utc(r.created_at), now=now, custom_interval_hours=r.custom_interval_hours,
                      cron_expression=r.cron_expression):
            found.append({"schedule_id": r.id, "chart_id": r.chart_id, "chart": r.slug, "chart_name": r.name,
                          "frequency": r.sync_frequency, "created_at": as_utc(r.created_at),
                          "last_success": last})
    return found


def collect_digest(engine: Engine, now: datetime, window: timedelta = timedelta(days=1)) -> Digest:
    since = now - window
    rows = list_alerts(engine, since=since, paging=PageRequest(1000)).items
    alerts = {k: [r for r in rows if r["kind"] == k] for k in (FAILURE, DEADLINE, DEGRADATION)}
    flagged = [{"chart_id": c.chart_id, "chart": c.slug, "chart_name": c.name, "schedule_id": c.schedule_id,
                "flagged": c.rankings_flagged, "flag_counts": c.flag_counts}
               for c in quality_reports.flagged_since(engine, since)]
    return Digest(since, now, overdue_schedules(engine, now), alerts, alert_store.failed_tries_since(engine, since),
                  flagged)


def run_digest(engine: Engine, now: datetime | None = None) -> dict:
    """Alert each newly overdue schedule once, then send and record the digest."""
    now = now or datetime.now(UTC)
    digest = collect_digest(engine, now)
    newly = [o for o in digest.overdue if not alert_store.alerted_since(engine, o["chart_id"], o["last_success"] or
                                                             o["created_at"])]
    for o in newly:
        last = (f"since {o['last_success']:%Y-%m-%d %H:%M} UTC" if o["last_success"]
                else "since it was created")
        raise_alert(Alert(kind=OVERDUE, summary=f"No successful sync {last}: longer than one "
                                                 f"{o['frequency']} period plus its grace.",
                          chart_id=o["chart_id"], chart=o["chart"], chart_name=o["chart_name"],
                          schedule_id=o["schedule_id"], dag_id=dag_id_for(o["chart"])), engine, now=now)
    channels = raise_alert(digest_alert(digest, ui_base_url()), engine, now=now)
    result = {"overdue": [o["chart"] for o in digest.overdue], "new_overdue_alerts": len(newly),
              "failures": len(digest.alerts[FAILURE]), "deadline_misses": len(digest.alerts[DEADLINE]),
              "slow_runs": len(digest.alerts[DEGRADATION]), "failed_tries": digest.failed_tries,
              "rankings_flagged": digest.rankings_flagged,
              "flagged_charts": {q["chart"]: q["flagged"] for q in digest.quality}, "channels": channels}
    log.info("chart-sync digest: %s", result)
    return result
