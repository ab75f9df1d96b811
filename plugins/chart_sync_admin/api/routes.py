"""The chart-sync REST API: its routes, under ``/chart-sync/api/sync`` and ``/chart-sync/api/quota`` (and in
the OpenAPI spec).

Thin by design: each endpoint checks access (``security``), validates input with the schemas,
calls one ``chartsync`` service function and returns its result; the service's exceptions become
HTTP statuses in one place, the app's error table (``errors``).
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Literal

from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.api_fastapi.core_api.security import GetUserDep
from chartsync.store import audit
from chartsync.services import alerts
from chartsync.services import budget
from chartsync.services import gaps
from chartsync.services import history
from chartsync.services import quality
from chartsync.services import quota
from chartsync.services import schedules
from chartsync.store import stats
from chartsync.store.engine import chart_engine
from chartsync.core.alerts import KINDS
from chartsync.core.outcomes import EXECUTION_STATUSES
from chartsync.core.paging import Page, PageRequest
from chartsync.settings import QUALITY_FLAGS
from chartsync.soundcharts.client import SoundchartsClient
from chartsync.soundcharts.errors import SoundchartsError
from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status

from chart_sync_admin.api import schemas as m
from chart_sync_admin.door import DIGITS, NO_CONTROL_PATTERN, PathId
from chart_sync_admin.security import actor, can_edit, can_read, can_run, dag_access

API_PREFIX = "/api/sync"
QUOTA_PREFIX = "/api/quota"

sync = APIRouter(prefix=API_PREFIX)
quota_api = APIRouter(prefix=QUOTA_PREFIX)
# integers in plain digits only (``door.whole_number``): "1.0", "01", "+1" name no schedule
ScheduleId = PathId
ChartId = PathId


# -- paging ---------------------------------------------------------------------------------------
def page_out(page: Page) -> dict:
    """A service's page as the API shows it."""
    return {"items": page.items, "total": page.total, "page": page.page, "page_size": page.page_size,
            "limit": page.limit, "offset": page.offset}


def paging(
    page: Annotated[int, Query(ge=1, le=1_000_000), DIGITS] = 1,
    page_size: Annotated[int, Query(ge=1, le=500), DIGITS] = 50,
    limit: Annotated[int | None, Query(ge=1, le=500, description="instead of page_size"), DIGITS] = None,
    offset: Annotated[int | None, Query(ge=0, le=m.MAX_ID, description="instead of page"), DIGITS] = None,
) -> PageRequest:
    """page/page_size, or limit/offset (which win when given)."""
    if limit is None and offset is None:
        return PageRequest.number(page, page_size)
    return PageRequest(limit or page_size, offset or 0)


PagingDep = Annotated[PageRequest, Depends(paging)]
Platform = Annotated[str | None, Query(max_length=50, pattern=NO_CONTROL_PATTERN)]
FrequencyFilter = Annotated[m.FrequencyName | None, Query()]
ExecutionStatus = Literal[EXECUTION_STATUSES]


def engine():
    return chart_engine()


# -- schedules ------------------------------------------------------------------------------------
@sync.get("/schedules/", response_model=m.Page[m.ScheduleOut], dependencies=can_read,
            summary="List sync schedules with chart, status and statistics")
def list_schedules(paging: PagingDep, platform: Platform = None, frequency: FrequencyFilter = None,
                   active: bool | None = None, overdue: bool | None = None):
    return page_out(schedules.list_schedules(engine(), platform=platform, frequency=frequency, active=active,
                                             overdue=overdue, paging=paging))


ONE_SCHEDULE = "#/paths/~1api~1sync~1schedules~1{schedule_id}~1"  # a JSON pointer into the spec's paths


def schedule_links() -> dict:
    """OpenAPI links from a new schedule to the operations on it (for clients, and for the fuzzer's
    stateful phase: create, then read, change and delete what it created)."""
    by_id = {"schedule_id": "$response.body#/schedule/id"}
    links = {f"{method}_schedule": {"operationRef": f"{ONE_SCHEDULE}/{method}", "parameters": by_id}
             for method in ("get", "put", "patch", "delete")}
    links["get_history"] = {"operationRef": f"{ONE_SCHEDULE}history~1/get", "parameters": by_id}
    links["get_status"] = {"operationRef": "#/paths/~1api~1sync~1status~1{chart_id}~1/get",
                           "parameters": {"chart_id": "$response.body#/schedule/chart_id"}}
    return {"links": links}


@sync.post("/schedules/", response_model=m.ScheduleCreateOut, status_code=status.HTTP_201_CREATED,
             dependencies=can_edit, summary="Schedule a chart (its DAG appears at the next parse)",
             responses={status.HTTP_201_CREATED: schedule_links()})
def create_schedule(body: m.ScheduleCreate, user: GetUserDep):
    settings = body.model_dump(exclude={"chart_id"})
    change = schedules.create_schedule(engine(), body.chart_id, actor=actor(user), **settings)
    return _write_result(change) | {"estimate": change.estimate}


@sync.get("/schedules/{schedule_id}/", response_model=m.ScheduleDetailOut, dependencies=can_read,
            summary="One schedule with its recent execution history")
def get_schedule(schedule_id: ScheduleId, history: Annotated[int, Query(ge=0, le=500), DIGITS] = 20):
    return schedules.schedule_detail(engine(), schedule_id, history)


@sync.get("/schedules/{schedule_id}/history/", response_model=m.Page[m.PeriodHistoryOut], dependencies=can_read,
            summary="A schedule's execution history, one row per period (latest status, tries folded in)")
def get_history(schedule_id: ScheduleId, paging: PagingDep, status: ExecutionStatus | None = None,
                period_from: Annotated[date | None, Query(alias="from", description="first period")] = None,
                period_to: Annotated[date | None, Query(alias="to", description="last period")] = None):
    return page_out(history.period_history(engine(), schedule_id, status=status, first=period_from,
                                           last=period_to, paging=paging))


QualityFlag = Literal[QUALITY_FLAGS]


@sync.get("/schedules/{schedule_id}/quality/", response_model=m.QualityOut, dependencies=can_read,
            summary="A schedule's data quality: rankings checked and flagged, per flag, and the flagged rankings")
def get_quality(schedule_id: ScheduleId, paging: PagingDep,
                flag: Annotated[QualityFlag | None, Query(description="only rankings with this flag")] = None):
    report = quality.schedule_quality(engine(), schedule_id, flag=flag, paging=paging)
    return {"schedule_id": report.schedule_id, "chart_id": report.chart_id, "slug": report.slug,
            "summary": report.summary, "rankings": page_out(report.rankings)}


@sync.put("/schedules/{schedule_id}/", response_model=m.ScheduleWriteOut, dependencies=can_edit,
            summary="Replace a schedule's settings (omitted fields take their defaults)")
def replace_schedule(schedule_id: ScheduleId, body: m.ScheduleReplace, user: GetUserDep):
    change = schedules.update_schedule(engine(), schedule_id, body.model_dump(), actor=actor(user), replace=True)
    return _write_result(change)


@sync.patch("/schedules/{schedule_id}/", response_model=m.ScheduleWriteOut, dependencies=can_edit,
              summary="Change some of a schedule's settings")
def patch_schedule(schedule_id: ScheduleId, body: m.SchedulePatch, user: GetUserDep):
    change = schedules.update_schedule(engine(), schedule_id, body.model_dump(exclude_unset=True),
                                       actor=actor(user))
    return _write_result(change)


@sync.delete("/schedules/{schedule_id}/", response_model=m.ScheduleDeleteOut, dependencies=can_edit,
               summary="Remove a schedule (its DAG is paused; runs and rankings are kept)")
def delete_schedule(schedule_id: ScheduleId, user: GetUserDep):
    change = schedules.delete_schedule(engine(), schedule_id, actor=actor(user))
    return {"schedule_id": change.schedule_id, "chart_id": change.chart_id, "dag_id": change.dag_id,
            "message": change.message}


@sync.post("/schedules/bulk/", response_model=m.BulkOut, dependencies=can_edit,
             summary="add / remove / activate / deactivate / trigger many charts, reported per chart")
def bulk(body: m.BulkRequest, request: Request, user: GetUserDep):
    if body.action == "trigger":
        dag_access("POST", DagAccessEntity.RUN)(request, user)
    options = body.options.model_dump() if body.options else None
    # before the add: what its first syncs and history cost (after it, the charts are scheduled)
    cost = schedules.add_estimate(engine(), body.chart_ids, options) if body.action == "add" else None
    items = schedules.bulk(engine(), body.action, body.chart_ids, actor=actor(user), options=options)
    summary: dict[str, int] = {}
    for item in items:
        summary[item.outcome] = summary.get(item.outcome, 0) + 1
    return {"action": body.action, "summary": summary, "results": items, "estimate": cost}


def _write_result(change: schedules.ScheduleChange) -> dict:
    return {"schedule": schedules.describe(engine(), [schedules.get_schedule(engine(), change.schedule_id)])[0],
            "dag_id": change.dag_id, "dag_in_airflow": change.dag_in_airflow, "changed": change.changed,
            "message": change.message}


# -- runs, status, gaps --------------------------------------------------------------------------
@sync.post("/trigger/", response_model=m.TriggerOut, status_code=status.HTTP_201_CREATED,
             dependencies=can_run, summary="Create a DAG run of a chart now (200: the period's queued or running "
             "run, returned instead of a second one)", responses={200: {"model": m.TriggerOut}})
def trigger(body: m.TriggerRequest, user: GetUserDep, response: Response):
    run = schedules.trigger(engine(), body.chart_id, body.period, actor=actor(user), snap=body.snap)
    note = "; the DAG is paused, so the run waits until it is unpaused" if run.dag_is_paused else ""
    if not run.created:
        response.status_code = status.HTTP_200_OK
        note = f" (already {run.state}: no second run){note}"
    return {**asdict(run), "message": f"{run.dag_id}: run {run.run_id} is {run.state}{note}"}


@sync.get("/status/{chart_id}/", response_model=m.StatusOut, dependencies=can_read,
            summary="A chart's schedule, latest execution, next run, overdue flag and coverage")
def chart_status(chart_id: ChartId):
    return schedules.status(engine(), chart_id)


@sync.get("/gaps/", response_model=m.GapsOut, dependencies=can_read,
            summary="Missing periods of scheduled charts, as ranges with the backfill that heals each")
def list_gaps(chart_id: Annotated[int | None, Query(ge=1, le=m.MAX_ID), DIGITS] = None):
    report = gaps.gap_report(engine(), chart_id)
    return {"items": report.gaps, "total": len(report.gaps), "waiting": report.waiting}


@sync.post("/gaps/heal/", response_model=m.HealOut, dependencies=can_run,
             summary="Create Airflow backfills for the gaps of some (or all) charts")
def heal_gaps(body: m.HealRequest, user: GetUserDep):
    return {"results": gaps.heal(engine(), body.slugs, actor=actor(user))}


# -- stats and audit ----------------------------------------------------------------------------
@sync.get("/stats/", response_model=m.StatsOut, dependencies=can_read,
            summary="Success rate, executions, average duration and freshness: overall and per schedule")
def get_stats(paging: PagingDep, platform: Platform = None, frequency: FrequencyFilter = None,
              active: bool | None = None, overdue: bool | None = None,
              days: Annotated[int | None, Query(ge=1, le=3660, description="only executions of the last N days"),
                              DIGITS] = None):
    since = datetime.now(UTC) - timedelta(days=days) if days else None
    page = schedules.list_schedules(engine(), platform=platform, frequency=frequency, active=active,
                                    overdue=overdue, paging=paging, since=since)
    return {"overall": stats.overall_stats(engine(), since=since), "schedules": page_out(page)}


@sync.get("/audit/", response_model=m.Page[m.AuditOut], dependencies=can_read,
            summary="Who changed what, newest first")
def list_audit(paging: PagingDep, entity_id: Annotated[int | None, Query(ge=0, le=m.MAX_ID), DIGITS] = None,
               actor: Annotated[str | None, Query(max_length=250, pattern=NO_CONTROL_PATTERN)] = None,
               entity: Annotated[str | None, Query(max_length=50, pattern=NO_CONTROL_PATTERN)] = None,
               action: Annotated[str | None, Query(max_length=50, pattern=NO_CONTROL_PATTERN)] = None):
    return page_out(audit.entries(engine(), entity=entity, entity_id=entity_id, actor=actor, action=action,
                                  paging=paging))


AlertKind = Literal[KINDS]


@sync.get("/alerts/", response_model=m.Page[m.AlertOut], dependencies=can_read,
            summary="The alert feed (deadline, degradation, failure, overdue, digest), newest first")
def list_alerts(paging: PagingDep, kind: AlertKind | None = None,
                chart_id: Annotated[int | None, Query(ge=1, le=m.MAX_ID), DIGITS] = None,
                days: Annotated[int | None, Query(ge=1, le=3660, description="only alerts of the last N days"),
                                DIGITS] = None):
    since = datetime.now(UTC) - timedelta(days=days) if days else None
    return page_out(alerts.list_alerts(engine(), kind=kind, chart_id=chart_id, since=since, paging=paging))


# -- the Soundcharts API quota --------------------------------------------------------------------------
@quota_api.get("/", response_model=m.QuotaOut, dependencies=can_read,
               summary="The Soundcharts API quota: left (last seen), spent, burn rate, run-out date, top charts")
def get_quota():
    return budget.report(engine()).as_dict()


@quota_api.get("/estimate/add/", response_model=m.EstimateTextOut, dependencies=can_read,
               summary="What adding these charts would cost of the quota (first syncs and history), before the add")
def estimate_add(chart_ids: Annotated[list[Annotated[int, Query(ge=1, le=m.MAX_ID)]], Query(max_length=500)],
                 sync_frequency: FrequencyFilter = None,
                 custom_interval_hours: Annotated[int | None, Query(ge=1, le=m.MAX_CUSTOM_HOURS), DIGITS] = None,
                 cron_expression: Annotated[str | None, Query(max_length=m.MAX_CRON_LENGTH,
                                                              pattern=NO_CONTROL_PATTERN)] = None,
                 sync_historical_data: bool = True, sync_immediately: bool = True):
    found = schedules.add_estimate(engine(), chart_ids, {
        "sync_frequency": sync_frequency, "custom_interval_hours": custom_interval_hours,
        "cron_expression": cron_expression, "sync_historical_data": sync_historical_data,
        "sync_immediately": sync_immediately})
    return {**asdict(found), "text": budget.describe(found)}


@quota_api.get("/estimate/heal/", response_model=m.EstimateTextOut, dependencies=can_read,
               summary="What healing these charts' gaps (default: every active schedule's) would cost of the quota")
def estimate_heal(slugs: Annotated[list[m.Slug] | None, Query(max_length=500)] = None):
    found = gaps.heal_estimate(engine(), slugs)
    return {**asdict(found), "text": budget.describe(found)}


@quota_api.post("/refresh/", response_model=m.QuotaOut, dependencies=can_edit,
                summary="Read the quota afresh from the Soundcharts usage endpoint (it spends none)")
def refresh_quota():
    try:
        quota.refresh(engine(), SoundchartsClient())
    except SoundchartsError as exc:  # the API's failure, not ours: a bad gateway, in its words
        raise HTTPException(status.HTTP_502_BAD_GATEWAY, f"Soundcharts usage endpoint: {exc}") from exc
    return budget.report(engine()).as_dict()


router = APIRouter()  # what the app mounts: both families, in this order in the spec
router.include_router(sync)
router.include_router(quota_api)
