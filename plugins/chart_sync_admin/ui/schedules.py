"""The sync schedules (``/ui/schedules``), one schedule's page, their actions and its configuration form."""

from __future__ import annotations

from chartsync.core import calendar
from chartsync.core import schedule
from chartsync.core.paging import PageRequest
from chartsync.core.rules import SCHEDULE_STATUSES
from chartsync.services import coverage
from chartsync.services import gaps
from chartsync.services import quality
from chartsync.store import pages
from chartsync.services import schedules
from chartsync.store.engine import chart_engine
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.datastructures import FormData

from chart_sync_admin.door import PathId
from chart_sync_admin.security import FormDep, Viewer, ViewerDep, require_run
from chart_sync_admin.ui.forms import (
    back,
    bulk_message,
    confirm,
    form_float,
    form_ids,
    form_int,
    dag_link,
    heal_message,
    ids,
    invalid_form,
    list_filters,
    message,
    query_choice,
    query_int,
    redirect,
)
from chart_sync_admin.ui.history import schedule_history, schedule_table_periods
from chart_sync_admin.ui.rendering import PAGE_SIZE, UI, page_url, render
from chart_sync_admin.ui.stats import quality_plot

router = APIRouter(prefix=UI, include_in_schema=False)
SCHEDULE_ACTIONS = {"activate": "Activate", "deactivate": "Deactivate", "trigger": "Trigger manual sync",
                    "heal": "Heal gaps"}
QUALITY_PAGE_SIZE = 10


@router.get("/schedules", response_class=HTMLResponse)
def schedules_page(request: Request, viewer: ViewerDep):
    filters = list_filters(request, SCHEDULE_STATUSES) | {
        "sort": query_choice(request, "sort", pages.SCHEDULE_SORTS, "chart"),
        "desc": request.query_params.get("desc") == "1"}
    result = schedules.schedule_table(chart_engine(), search=filters["q"], platform=filters["platform"],
                                  frequency=filters["frequency"], status=filters["status"], sort=filters["sort"],
                                  descending=filters["desc"],
                                  paging=PageRequest.number(query_int(request, "page", 1), PAGE_SIZE))
    return render(request, viewer, "schedules.html", title="Sync schedules", nav="schedules", result=result,
                  filters=filters, platforms=pages.platforms(chart_engine()), **schedule_table_periods(result))


@router.post("/schedules/bulk")
def schedules_bulk(request: Request, viewer: ViewerDep, form: FormDep):
    single = str(form.get("single") or "")
    if single:  # a row's own button: "<action>:<schedule id>"
        action, _, one = single.partition(":")
        schedule_ids = ids([one])
    else:
        action, schedule_ids = str(form.get("action") or ""), form_ids(form, "schedule_id")
    return _schedule_action(request, viewer, form, action, schedule_ids, "/schedules")


@router.post("/schedules/{schedule_id}/action")
def schedule_action(request: Request, viewer: ViewerDep, form: FormDep, schedule_id: PathId):
    return _schedule_action(request, viewer, form, str(form.get("action") or ""), [schedule_id],
                            f"/schedules/{schedule_id}")


def _schedule_action(request: Request, viewer: Viewer, form: FormData, action: str, schedule_ids: list[int],
                     default: str) -> Response:
    to = back(request, form, default)
    if action not in SCHEDULE_ACTIONS:
        return redirect(request, to, [message("error", "Choose an action.")])
    rows = schedules.rows_by_id(chart_engine(), schedule_ids)
    if not rows:
        return redirect(request, to, [message("error", "Select at least one schedule.")])
    if action in ("trigger", "heal"):
        require_run(viewer)
    if form.get("confirmed") != "1":
        cost = gaps.heal_estimate(chart_engine(), [r.slug for r in rows]) if action == "heal" else None
        return confirm(request, viewer, form, SCHEDULE_ACTIONS[action], [f"{r.name} ({r.slug})" for r in rows],
                       default=default, estimate=cost)
    if action == "heal":
        results = gaps.heal(chart_engine(), [r.slug for r in rows], actor=viewer.name)
        return redirect(request, to, [heal_message(results)])
    items = schedules.bulk(chart_engine(), action, [r.chart_id for r in rows], actor=viewer.name)
    slugs = {r.chart_id: r.slug for r in rows}
    return redirect(request, to, [bulk_message(SCHEDULE_ACTIONS[action], items, slugs)])


@router.get("/schedules/{schedule_id}", response_class=HTMLResponse)
def schedule_page(request: Request, viewer: ViewerDep, schedule_id: PathId):
    return render(request, viewer, "schedule.html", nav="schedules", **schedule_context(request, schedule_id),
                  **quality_context(request, schedule_id))


def quality_context(request: Request, schedule_id: int) -> dict:
    """The schedule page's data quality: the summary, a page of the flagged rankings, rankings by month."""
    flag = query_choice(request, "flag", quality.FLAG_LABELS)
    report = quality.schedule_quality(chart_engine(), schedule_id, flag=flag, paging=PageRequest.number(
        query_int(request, "quality_page", 1), QUALITY_PAGE_SIZE))
    by_month = quality.quality_by_period(chart_engine(), 365, chart_id=report.chart_id)
    return {"quality": report, "quality_flag": flag, "flag_labels": quality.FLAG_LABELS,
            "quality_plot": quality_plot(by_month, scope=" (past year)")}


def schedule_context(request: Request, schedule_id: int) -> dict:
    """What the schedule page shows; the chart DAG's tab in the Airflow UI shows part of it."""
    detail = schedules.schedule_detail(chart_engine(), schedule_id, history=0)
    row = schedules.get_schedule(chart_engine(), schedule_id)
    try:
        config = schedules.ScheduleConfig.from_row(row)
        live = coverage.schedule_coverage(chart_engine(), config)  # the strip, the card and the gap table, at once
        strip, strip_error, gap_ranges, coverage_row = live.cells, None, live.gaps, live.coverage
        waiting = live.waiting
    except schedules.ScheduleError as exc:
        config, strip, strip_error, gap_ranges, coverage_row, waiting = None, [], str(exc), [], None, None
    counts = {status: 0 for status in coverage.STATUSES}
    for cell in strip:
        counts[cell.status] += 1
    return dict(title=row.name, s=detail, config=config, strip=strip, strip_counts=counts, strip_error=strip_error,
                **schedule_history(request, schedule_id, config, strip),
                gaps=gap_ranges, waiting=waiting, coverage_row=coverage_row, deadline=_deadline_text(row))


def _deadline_text(row) -> str:
    try:
        hours = calendar.deadline_hours(row.sync_frequency, row.deadline_hours, row.custom_interval_hours,
                                      row.cron_expression)
    except (ValueError, KeyError):
        return "—"
    return f"{hours:g} h after the period ends" + ("" if row.deadline_hours else " (the frequency's default)")


@router.post("/schedules/{schedule_id}/config")
def schedule_config(request: Request, viewer: ViewerDep, form: FormDep, schedule_id: PathId):
    to = page_url(request, f"/schedules/{schedule_id}")
    frequency = str(form.get("sync_frequency") or "")
    try:
        changes = {
            "is_active": form.get("is_active") == "on",
            "sync_frequency": frequency,
            "custom_interval_hours": form_int(form, "custom_interval_hours")
            if frequency == "custom" else None,
            "cron_expression": ((form.get("cron_expression") or "").strip()[:100] or None)
            if frequency == "cron" else None,
            "sync_immediately": form.get("sync_immediately") == "on",
            "sync_historical_data": form.get("sync_historical_data") == "on",
            "fetch_track_metadata": form.get("fetch_track_metadata") == "on",
            "deadline_hours": form_float(form, "deadline_hours"),
        }
        change = schedules.update_schedule(chart_engine(), schedule_id, changes, actor=viewer.name)
    except schedules.ScheduleError as exc:
        return invalid_form(request, form, exc, schedule_page, viewer, schedule_id,
                            default=f"/schedules/{schedule_id}")
    text = f"Configuration saved. {change.message}." if change.changed else "Nothing changed."
    row = schedules.get_schedule(chart_engine(), schedule_id)
    return redirect(request, to, [message("success", text, links=[dag_link(schedule.dag_id_for(row.slug))])])
