"""The chart DAGs' one task, ``sync_ranking``: ``services.sync.sync_run`` decides and returns an outcome;
``task_result`` maps it to Airflow's terms.

An operator class rather than a ``@task`` function, because a period that waits for the Soundcharts quota
defers: the task frees its worker slot (and its ``soundcharts_api`` pool slot), ``QuotaTrigger`` waits on
the triggerer, and Airflow resumes the same try through ``execute_complete`` (``BaseOperator.resume_execution``
calls the method the task named with the trigger's event), which syncs the period again. No try fails and
no retry is spent while it waits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException, AirflowRescheduleException, AirflowSkipException

from chartsync.builders.defaults import RANKINGS_ASSET, chart_rankings_asset
from chartsync.builders.priority import chart_weight_rule
from chartsync.builders.quota_trigger import QuotaTrigger
from chartsync.core.outcomes import (
    Failed,
    NothingToDo,
    NotPublishedYet,
    RunRef,
    Skipped,
    SyncOutcome,
    SyncResult,
    WaitingForQuota,
    rankings_event_extra,
)
from chartsync.core.schedule import ScheduleConfig
from chartsync.store.engine import chart_engine

TASK_ID = "sync_ranking"


class SyncRankingOperator(BaseOperator):
    """Sync the run's period of one chart; defer while it waits for the quota (see the module doc).

    One XCom, ``return_value``: the outcome's dict (``task_result``)."""

    ui_color = "#e8f4ea"

    def __init__(self, *, config: ScheduleConfig, **kwargs: Any) -> None:
        kwargs.setdefault("task_id", TASK_ID)
        if "weight_rule" not in kwargs and (rule := chart_weight_rule()) is not None:
            kwargs["weight_rule"] = rule  # fresh data first in the API pool (builders.priority)
        super().__init__(**kwargs)
        self.config = config

    def execute(self, context: Any) -> dict:
        return self.sync(context)

    def execute_complete(self, context: Any, event: Any = None, synced: Sequence[dict] = ()) -> dict:
        """Resumed by ``QuotaTrigger``'s event (the quota is back): sync the period again. ``synced``: the
        periods stored before the wait, announced with this try's."""
        self.log.info("The Soundcharts quota is back (%s): syncing again", event)
        return self.sync(context, tuple(SyncResult.from_dict(r) for r in synced))

    def sync(self, context: Any, earlier: tuple[SyncResult, ...] = ()) -> dict:
        from chartsync.services import sync  # deferred: parse-time cost (the client loads the http provider)
        from chartsync.soundcharts.client import SoundchartsClient  # deferred: likewise

        period = sync.period_for_run(self.config, context.get("logical_date"), context.get("data_interval_end"))
        outcome = sync.sync_run(chart_engine(), SoundchartsClient(), self.config, run_ref(self.config, context),
                                period, run_type=run_type(context), wait_for_quota=True)
        if earlier:
            outcome = replace(outcome, results=(*earlier, *outcome.results))
        if isinstance(outcome, WaitingForQuota):
            self.defer(trigger=quota_trigger(outcome, self.config), method_name="execute_complete",
                       kwargs={"synced": [r.as_dict() for r in outcome.results]})
        return task_result(outcome, self.config, context)


def quota_trigger(waiting: WaitingForQuota, config: ScheduleConfig) -> QuotaTrigger:
    """The trigger a waiting period defers to: history waits for the reserve, the newest period for some."""
    return QuotaTrigger(history=waiting.history, slug=config.slug,
                        period=waiting.period.isoformat() if waiting.period else None)


# -- from Airflow's context to the service and back -------------------------------------------------
def run_ref(config: ScheduleConfig, context: dict) -> RunRef:
    ti = context["ti"]
    return RunRef(config.chart_id, ti.dag_id, ti.run_id, int(getattr(ti, "try_number", 1) or 1))


def run_type(context: dict) -> str | None:
    kind = getattr(context.get("dag_run"), "run_type", None)
    return getattr(kind, "value", kind)


def task_result(outcome: SyncOutcome, config: ScheduleConfig, context: dict) -> dict:
    """The outcome in Airflow's terms: a return value, a reschedule, or a failure without retry
    (``WaitingForQuota`` is the operator's: it defers).

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
    if isinstance(outcome, WaitingForQuota):
        raise TypeError("a period waiting for the quota defers (SyncRankingOperator.sync); it has no result")
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
