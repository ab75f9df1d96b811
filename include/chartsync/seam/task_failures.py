"""What Airflow says about a task try that did not succeed, as plain values (``FailedTry``).

Three producers translate Airflow's objects here, so the service (``services.failures``) sees plain
values only:

- ``from_task_instance``: a listener's task instance, the ORM ``TaskInstance`` (scheduler,
  api-server) or the Task SDK's ``RuntimeTaskInstance`` (the task process);
- ``from_context``: the context of an ``on_failure_callback`` (task process or dag-processor);
- ``seam.orchestration.failed_tries``: the task instances and their history in the metadata DB.

Light on purpose: every Airflow process imports it through the plugin's listeners (no Airflow
import here).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

FAILED, UP_FOR_RETRY, UPSTREAM_FAILED = "failed", "up_for_retry", "upstream_failed"
FAILED_STATES = (FAILED, UP_FOR_RETRY, UPSTREAM_FAILED)
FINAL_STATES = (FAILED, UPSTREAM_FAILED)  # no retry follows: the failure alert is due


@dataclass(frozen=True)
class FailedTry:
    """One task try that Airflow ended failed, up_for_retry or upstream_failed."""

    dag_id: str
    run_id: str
    task_id: str
    try_number: int
    state: str
    final: bool  # the task instance is failed for good (no retry left, or failed by hand)
    logical_date: datetime | None = None
    data_interval_end: datetime | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    error: str | None = None
    seen_by: str = "airflow"  # task, scheduler, api-server, callback, reconciliation: for the logs

    @property
    def key(self) -> tuple[str, str, str, int]:
        return self.dag_id, self.run_id, self.task_id, self.try_number


def state_name(state: Any) -> str:
    """``TaskInstanceState.FAILED`` or ``"failed"`` -> ``"failed"``."""
    return str(getattr(state, "value", state) or "")


def error_text(error: Any) -> str | None:
    if error is None or error == "":
        return None
    if isinstance(error, BaseException):
        return f"{type(error).__name__}: {error}"
    return str(error)


def from_task_instance(ti: Any, error: Any = None, *, seen_by: str = "airflow") -> FailedTry | None:
    """A listener's task instance as a FailedTry; None when its state is not a failed one."""
    state = state_name(getattr(ti, "state", None))
    if state not in FAILED_STATES:
        return None
    logical_date, interval_end = _run_dates(ti)
    return FailedTry(
        dag_id=ti.dag_id, run_id=ti.run_id, task_id=ti.task_id, try_number=int(getattr(ti, "try_number", 0) or 0),
        state=state, final=state in FINAL_STATES, logical_date=logical_date, data_interval_end=interval_end,
        started_at=getattr(ti, "start_date", None), ended_at=getattr(ti, "end_date", None),
        error=error_text(error), seen_by=seen_by)


def from_context(context: Mapping[str, Any], *, seen_by: str = "callback") -> FailedTry | None:
    """The context of an ``on_failure_callback`` as a FailedTry (final unless the try is up for retry)."""
    ti = context.get("ti") or context.get("task_instance")
    if ti is None:
        return None
    dag_id = getattr(ti, "dag_id", None) or getattr(context.get("dag"), "dag_id", None)
    state = state_name(getattr(ti, "state", None)) or FAILED
    if state not in FAILED_STATES:
        state = FAILED  # the callback only runs for a failure; the state may not be set yet
    logical_date = context.get("logical_date") or context.get("data_interval_start")
    return FailedTry(
        dag_id=dag_id, run_id=getattr(ti, "run_id", None) or context.get("run_id"),
        task_id=getattr(ti, "task_id", None) or "task", try_number=int(getattr(ti, "try_number", 0) or 0),
        state=state, final=state in FINAL_STATES,
        logical_date=logical_date if isinstance(logical_date, datetime) else None,
        data_interval_end=_datetime(context.get("data_interval_end")),
        started_at=_datetime(getattr(ti, "start_date", None)), ended_at=_datetime(getattr(ti, "end_date", None)),
        error=error_text(context.get("exception") or context.get("reason")), seen_by=seen_by)


def _run_dates(ti: Any) -> tuple[datetime | None, datetime | None]:
    """The run's logical date and data interval end, from what the task instance carries.

    ORM task instances (scheduler, api-server) have ``dag_run`` (possibly detached: then nothing);
    the Task SDK's has its template context (the task process)."""
    try:
        run = getattr(ti, "dag_run", None)
        if run is not None:
            return _datetime(getattr(run, "logical_date", None)), _datetime(getattr(run, "data_interval_end", None))
    except Exception:  # detached from its session: the caller looks the run up
        pass
    if type(ti).__module__.startswith("airflow.sdk"):
        try:
            context = ti.get_template_context()
            return _datetime(context.get("logical_date")), _datetime(context.get("data_interval_end"))
        except Exception:
            pass
    return None, None


def _datetime(value: Any) -> datetime | None:
    return value if isinstance(value, datetime) else None
