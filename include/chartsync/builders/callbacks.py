"""The callbacks chart-sync hands Airflow: the failure callback of every task and the chart DAGs'
Deadline Alerts (the SLA successor). Each turns Airflow's context into a call of ``services.alerts``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from airflow.sdk import AsyncCallback, DeadlineAlert, DeadlineReference

from chartsync.core import calendar
from chartsync.core.alerts import DEADLINE, DEGRADATION
from chartsync.core.schedule import ScheduleConfig, slug_of
from chartsync.seam.task_failures import from_context
from chartsync.store.engine import chart_engine
from chartsync.settings import deadline_alerts_enabled

log = logging.getLogger(__name__)


def deadlines_for(config: ScheduleConfig) -> list[DeadlineAlert]:
    """The Deadline Alerts of one chart DAG (a ``ScheduleConfig``): the sync deadline and degradation.

    Sync deadline: "period P must be synced within N hours of its data interval end". Airflow
    3.3.2 offers DAGRUN_LOGICAL_DATE, DAGRUN_QUEUED_AT, FIXED_DATETIME and AVERAGE_RUNTIME.
    Our timetables are data-interval ones, so a run's logical date *is* its data interval start,
    the start of the period it syncs (a manual run "for D" syncs period D: services.sync.period_for_run);
    DAGRUN_LOGICAL_DATE + (one period + N h) is therefore "N h after the period's end", for
    scheduled, catchup and backfill runs alike. DAGRUN_QUEUED_AT would measure from when the
    scheduler got round to the run (a late scheduler or a catchup queue would shift every
    deadline), and a custom reference would have to be registered through a plugin in the
    scheduler. Manual runs without a logical date get no sync deadline (Airflow skips it).

    Degradation: AVERAGE_RUNTIME (the DAG's recent successful runs) plus DEGRADATION_SLACK.

    Airflow gives every run of the DAG both deadlines, history too (3.3.2 cannot limit them to some
    runs); the callback keeps catchup and backfill runs quiet (``core.alerts.skip_reason``). The
    callback's kwargs say only what describes the deadline (kind, frequency, allowed hours): Airflow
    copies them into each run's deadline when the run is created, so an id frozen there would outlive
    the schedule it names. The chart and its schedule are looked up from the run's DAG when the
    deadline passes.
    """
    if not deadline_alerts_enabled():
        return []
    hours = calendar.deadline_hours(config.frequency, config.deadline_hours, config.custom_interval_hours,
                                    config.cron_expression)
    about = {"frequency": config.frequency.value, "allowed_hours": hours}
    return [
        DeadlineAlert(
            reference=DeadlineReference.DAGRUN_LOGICAL_DATE,
            interval=calendar.sync_deadline(config.frequency, config.deadline_hours,
                                            config.custom_interval_hours, config.cron_expression),
            callback=AsyncCallback(on_deadline_missed, kwargs={"kind": DEADLINE, **about}),
            name="sync deadline",
        ),
        DeadlineAlert(
            reference=DeadlineReference.AVERAGE_RUNTIME(max_runs=calendar.AVERAGE_RUNTIME_RUNS,
                                                        min_runs=calendar.AVERAGE_RUNTIME_MIN_RUNS),
            interval=calendar.DEGRADATION_SLACK,
            callback=AsyncCallback(on_deadline_missed, kwargs={"kind": DEGRADATION, **about}),
            name="runtime degradation",
        ),
    ]


async def on_deadline_missed(*, kind: str, frequency: str, allowed_hours: float, context: dict | None = None,
                             **frozen: Any) -> str:
    """AsyncCallback of the chart DAGs' Deadline Alerts; runs in the triggerer (see the module doc).

    ``frozen``: the chart's ids and names that deadlines created by earlier chart-sync versions carry;
    ignored, the chart is found by the run's DAG. Returns a string: Airflow 3.3.2 stores the result in
    the ``callback.output`` text column, and a result it cannot store there (a dict) kills the
    triggerer's runner process.
    """
    from chartsync.services import alerts  # deferred: parse-time cost (alerting loads the channels' providers)

    outcome = await asyncio.to_thread(alerts.handle_deadline_miss, kind, context or {}, frequency=frequency,
                                      allowed_hours=allowed_hours)
    return str(outcome)


def on_task_failure(context: Mapping[str, Any]) -> None:
    """``on_failure_callback`` of every chart-sync task (``builders.defaults``).

    Airflow calls it only when the task instance has failed for good: its retries are used up,
    or the failure must not be retried (``AirflowFailException``). A try that will be retried
    goes to ``on_retry_callback`` instead, so stakeholders hear of a failure once, at the end.
    It runs in the task process, or in the dag-processor for a task killed from outside.

    ``services.failures`` records the try and raises its alert once: the plugin's listeners and
    the reconciliation with Airflow's state report the same failure, and whichever comes first
    raises it. When the chart DB is down, a chart DAG's failure waits for the reconciliation;
    another DAG's alert is sent at once (nothing else would report it), unrecorded.
    """
    from chartsync.services import alerts, failures  # deferred: parse-time cost (alerting loads the channels' providers)

    failed = from_context(context, seen_by="failure callback")
    if failed is None or not failed.final:
        return
    try:
        failures.record_airflow_failure(chart_engine(), failed)
    except Exception as exc:  # an alert problem must never hide the task's own failure
        if slug_of(failed.dag_id) is not None:
            log.warning("chart-sync: chart DB unavailable (%s); the failure of %s %s try %s is recorded, and "
                        "its alert raised, by the next reconciliation with Airflow", exc, failed.dag_id,
                        failed.run_id, failed.try_number)
            return
        try:
            alert = alerts.failure_alert(context)
            if alert is not None:
                alerts.raise_alert(alert)
        except Exception:
            log.exception("chart-sync: the failure alert could not be raised")
