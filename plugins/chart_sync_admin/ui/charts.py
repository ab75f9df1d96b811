"""The chart catalogue (``/ui/charts``, also the pages' home) and its bulk actions."""

from __future__ import annotations

from chartsync.core.paging import PageRequest
from chartsync.core.rules import CHART_STATUSES
from chartsync.store import pages
from chartsync.services import schedules
from chartsync.store.engine import chart_engine
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from chart_sync_admin.security import FormDep, ViewerDep, require_run
from chart_sync_admin.ui.forms import (
    add_options,
    back,
    bulk_message,
    confirm,
    form_ids,
    invalid_form,
    list_filters,
    message,
    query_int,
    redirect,
)
from chart_sync_admin.ui.rendering import PAGE_SIZE, UI, page_url, render

router = APIRouter(prefix=UI, include_in_schema=False)
CHART_ACTIONS = {"add": "Add to sync schedule", "remove": "Remove from sync schedule",
                 "trigger": "Trigger manual sync"}


@router.get("/", name="ui_home")
def home(request: Request, viewer: ViewerDep):
    return RedirectResponse(page_url(request, "/charts"), status_code=303)


@router.get("/charts", response_class=HTMLResponse)
def charts_page(request: Request, viewer: ViewerDep):
    filters = list_filters(request, CHART_STATUSES)
    result = pages.chart_catalogue(chart_engine(), search=filters["q"], platform=filters["platform"],
                                   status=filters["status"], frequency=filters["frequency"],
                                   paging=PageRequest.number(query_int(request, "page", 1), PAGE_SIZE))
    return render(request, viewer, "charts.html", title="Charts", nav="charts", result=result, filters=filters,
                  platforms=pages.platforms(chart_engine()))


@router.post("/charts/bulk")
def charts_bulk(request: Request, viewer: ViewerDep, form: FormDep):
    action = form.get("action")
    if action not in CHART_ACTIONS:
        return redirect(request, back(request, form, "/charts"), [message("error", "Choose an action.")])
    chart_ids = form_ids(form, "chart_id")
    if not chart_ids:
        return redirect(request, back(request, form, "/charts"), [message("error", "Select at least one chart.")])
    options = None
    if action == "add":
        try:
            options = add_options(form)
        except schedules.ScheduleError as exc:
            return invalid_form(request, form, exc, charts_page, viewer)
    if action == "trigger":
        require_run(viewer)
    # an add's first syncs and history cost API calls: said before it (and after it, in the message)
    cost = schedules.add_estimate(chart_engine(), chart_ids, options) if action == "add" else None
    if form.get("confirmed") != "1":
        return confirm(request, viewer, form, CHART_ACTIONS[action], pages.chart_names(chart_engine(), chart_ids),
                       options, estimate=cost)
    items = schedules.bulk(chart_engine(), action, chart_ids, actor=viewer.name, options=options)
    slugs = pages.chart_slugs(chart_engine(), chart_ids)
    return redirect(request, back(request, form, "/charts"),
                    [bulk_message(CHART_ACTIONS[action], items, slugs, estimate=cost)])
