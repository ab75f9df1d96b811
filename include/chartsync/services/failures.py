"""Airflow's state is the truth: every try of a chart DAG that Airflow ends failed, up_for_retry or
upstream_failed shows in chart-sync, and a final failure raises the failure alert exactly once.

Who tells us (each translates Airflow's objects into a ``seam.task_failures.FailedTry``):

- the plugin's listeners (``chart_sync_admin.listeners``): ``on_task_instance_failed`` in the task
  process (the body raised), in the scheduler (a try killed from outside, a heartbeat timeout)
  and in the api-server (a task instance or run marked failed by hand); ``on_dag_run_failed`` /
  ``on_dag_run_success`` in the scheduler and api-server (a run ended: its tries are checked);
- the tasks' failure callback (``builders.callbacks.on_task_failure``), for every chart-sync DAG;
- ``reconcile``: Airflow's metadata DB (``seam.orchestration.failed_tries``) against the chart DB,
  periodically in the scheduler (the listeners' reconciler) and on demand (``chartsync executions
  reconcile``). It records what no hook could: a try whose task process was killed (its supervisor
  reports the state; no hook runs), and every failure that happened while the chart DB was down.

``record_airflow_failure`` is the one decision for all of them, and it is idempotent: the try's
failed execution row is written unless it exists (a unique index per try decides races), and the
final failure's alert is claimed in ``chart_sync_alert`` before it is sent (a unique index per
kind and try), so it goes out once, whoever noticed first. When the chart DB is unreachable
nothing is sent; the error goes back to the caller, and the next reconciliation records it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import Engine

from chartsync import settings
from chartsync.core.alerts import FAILURE
from chartsync.core.outcomes import FAILED, RunRef
from chartsync.core.schedule import ScheduleConfig, slug_of
from chartsync.core.timestamps import as_utc
from chartsync.seam import metrics
from chartsync.seam.task_failures import FailedTry
from chartsync.services import alerts
from chartsync.services.sync import period_for_run
from chartsync.store import alerts as alert_store
from chartsync.store import executions
from chartsync.store.engine import chart_engine
from chartsync.store.schedules import load_rows

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class FailureRecord:
    """What chart-sync did about one failed try."""

    failed: FailedTry
    row_written: bool  # a failed execution row was added (False: the try had one, or no chart)
    alert_raised: bool  # the failure alert was raised now (False: not final, or raised before)


@dataclass(frozen=True)
class ReconcileResult:
    checked: int  # failed tries Airflow reported
    rows_written: int
    alerts_raised: int

    def as_dict(self) -> dict:
        return {"checked": self.checked, "rows_written": self.rows_written, "alerts_raised": self.alerts_raised}


def record_airflow_failure(engine: Engine, failed: FailedTry, *, now: datetime | None = None) -> FailureRecord:
    """Make chart-sync show one try Airflow did not let succeed: its failed execution row (a chart
    DAG's try, unless the try has one) and, when no retry follows, the failure alert (once).

    Raises when the chart DB cannot be reached; nothing was sent then (see the module doc).
    """
    now = now or datetime.now(UTC)
    chart_row = alert_store.chart_of_dag(engine, failed.dag_id)
    period = _period(engine, failed) if slug_of(failed.dag_id) else None
    recorded = executions.rows_of_try(engine, failed.dag_id, failed.run_id, failed.try_number)
    row_written = False
    if chart_row is not None:
        row_written = _record_row(engine, failed, chart_row.id, period, recorded, now)
    elif slug_of(failed.dag_id):
        log.warning("chart-sync: %s names no known chart; try %s of %s recorded nowhere but the alert feed",
                    failed.dag_id, failed.try_number, failed.run_id)
    alert_raised = False
    if failed.final and not alert_store.try_alerted(engine, FAILURE, failed.dag_id, failed.run_id, failed.task_id,
                                                     failed.try_number):
        body_error = next((r.error for r in recorded if r.status == FAILED and r.error), None)  # the task's own
        alert = alerts.task_failure_alert(
            dag_id=failed.dag_id, run_id=failed.run_id, task_id=failed.task_id, try_number=failed.try_number,
            error=failed.error or body_error or _unexplained(failed), period=period, chart_row=chart_row,
            last_error=body_error, state=failed.state)
        alert_raised = alerts.raise_alert_once(alert, engine, task_id=failed.task_id, try_number=failed.try_number,
                                               now=now) is not None
    if row_written or alert_raised:
        log.info("chart-sync: %s %s try %s %s (seen by %s): row %s, alert %s", failed.dag_id, failed.run_id,
                 failed.try_number, failed.state, failed.seen_by, "written" if row_written else "exists",
                 "raised" if alert_raised else "no")
    return FailureRecord(failed, row_written, alert_raised)


def reconcile(engine: Engine, tries: Iterable[FailedTry], *, now: datetime | None = None,
              settle: timedelta | None = None) -> ReconcileResult:
    """Record every failed try that chart-sync has not seen yet (idempotent: run it as often as you like).

    Two queries find what is missing (failed rows, failure alerts); only those tries are recorded.
    With ``settle``, a try that ended less than that ago is left for a later pass: the hook that saw
    it end (the api-server's, for a try marked failed by hand) records it with its reason first.
    """
    unique: dict[tuple, FailedTry] = {}
    recent = (now or datetime.now(UTC)) - settle if settle else None
    for t in tries:
        ended = _utc(t.ended_at) or _utc(t.started_at)
        if recent is not None and ended is not None and ended > recent:
            continue
        unique.setdefault(t.key, t)  # one per try: the first given wins (the current task instance)
    try:
        result = _reconcile(engine, list(unique.values()), now)
    except Exception:
        metrics.incr(metrics.RECONCILER_PASSES, status="error")
        raise
    metrics.incr(metrics.RECONCILER_PASSES, status="ok")
    metrics.incr(metrics.RECONCILER_FAILURES, result.rows_written)
    return result


def _reconcile(engine: Engine, tries: list[FailedTry], now: datetime | None) -> ReconcileResult:
    if not tries:
        return ReconcileResult(0, 0, 0)
    runs = {(t.dag_id, t.run_id) for t in tries}
    recorded = executions.failed_tries_recorded(engine, runs)
    alerted, legacy = alert_store.failure_alerted_tries(engine, runs)
    rows = raised = 0
    for t in tries:
        needs_row = slug_of(t.dag_id) is not None and (t.dag_id, t.run_id, t.try_number) not in recorded
        needs_alert = t.final and t.key not in alerted and (t.dag_id, t.run_id) not in legacy
        if not (needs_row or needs_alert):
            continue
        done = record_airflow_failure(engine, t, now=now)
        rows += done.row_written
        raised += done.alert_raised
    if rows or raised:
        log.warning("chart-sync reconciliation with Airflow: %d failed tries recorded, %d failure alerts raised",
                    rows, raised)
    return ReconcileResult(len(tries), rows, raised)


def reconcile_from_airflow(engine: Engine | None = None, *, since: datetime | None = None,
                           limit: int = settings.RECONCILE_LIMIT, dag_id: str | None = None,
                           run_id: str | None = None, settle: timedelta | None = None) -> ReconcileResult:
    """``reconcile`` with what Airflow's metadata DB says failed since ``since`` (default: 3 days).

    Only where the metadata DB is reachable: the scheduler, the api-server, the CLI (not in tasks).
    """
    from chartsync.seam import orchestration  # deferred: Airflow's core models load only where this runs

    since = since or datetime.now(UTC) - settings.RECONCILE_LOOKBACK
    tries = orchestration.failed_tries(since, limit, dag_id=dag_id, run_id=run_id)
    return reconcile(engine or chart_engine(), tries, settle=settle)


# -- the row ------------------------------------------------------------------------------------------
def _record_row(engine: Engine, failed: FailedTry, chart_id: int, period: date | None, rows: list,
                now: datetime) -> bool:
    """The try's failed row, unless ``rows`` (what the try recorded so far) has one."""
    if any(r.status == FAILED for r in rows):
        return False
    started = _utc(failed.started_at) or _utc(failed.ended_at) or now
    # the failure is the try's last word: it sorts after what the body recorded (a success it returned)
    started = max([started, *(as_utc(r.started_at) for r in rows)])
    completed = max(_utc(failed.ended_at) or now, started)
    returned = [r.status for r in rows]
    error = failed.error or _unexplained(failed)
    if returned:
        error = f"{error} (the task body had recorded {', '.join(returned)} for this try)"
    return executions.insert_failure(engine, RunRef(chart_id, failed.dag_id, failed.run_id, failed.try_number),
                                     period, started, completed, f"{failed.state} in Airflow: {error}")


def _unexplained(failed: FailedTry) -> str:
    if failed.state == "upstream_failed":
        return "an upstream task failed, so this one never ran"
    return ("the task recorded no error: it was killed, timed out, lost its heartbeat, or was cleared or "
            "marked failed by hand")


def _period(engine: Engine, failed: FailedTry) -> date | None:
    """The period the run syncs: from its schedule and dates (as the task works it out), else the
    period the run's rows name."""
    try:
        rows = load_rows(engine, slug_of(failed.dag_id))
        if rows and (failed.logical_date or failed.data_interval_end):
            period = period_for_run(ScheduleConfig.from_row(rows[0]), _utc(failed.logical_date),
                                    _utc(failed.data_interval_end))
            if period is not None:
                return period
    except Exception as exc:  # an invalid schedule row: fall back to what the run recorded
        log.debug("chart-sync: no period from the schedule of %s: %s", failed.dag_id, exc)
    return executions.run_period(engine, failed.dag_id, failed.run_id)


def _utc(value: datetime | None) -> datetime | None:
    return as_utc(value) if value is not None else None
