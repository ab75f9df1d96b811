"""The alert feed (``/ui/alerts``): deadline, degradation, failure, overdue and digest alerts, newest first."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from chartsync.core.alerts import KINDS, LABELS
from chartsync.core.paging import Page, PageRequest
from chartsync.services import alerts
from chartsync.services.charts import ChartNotFound, get_chart
from chartsync.store.engine import chart_engine
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from chart_sync_admin.security import ViewerDep
from chart_sync_admin.ui.forms import message, query_choice, query_int, query_text
from chart_sync_admin.ui.rendering import UI, render

router = APIRouter(prefix=UI, include_in_schema=False)
ALERT_PAGE_SIZE = 50


@router.get("/alerts", response_class=HTMLResponse)
def alerts_page(request: Request, viewer: ViewerDep):
    filters = {"kind": query_choice(request, "kind", KINDS), "chart": query_text(request, "chart", 200),
               "days": query_choice(request, "days", ("1", "7", "30", "365"))}
    chart_id, notes = None, []
    if filters["chart"]:
        try:
            chart_id = get_chart(chart_engine(), slug=filters["chart"]).id
        except ChartNotFound:
            notes.append(message("warning", f"No chart with the slug {filters['chart']!r}."))
    paging = PageRequest.number(query_int(request, "page", 1), ALERT_PAGE_SIZE)
    since = datetime.now(UTC) - timedelta(days=int(filters["days"])) if filters["days"] else None
    if filters["chart"] and chart_id is None:
        result = Page([], 0, paging.limit, paging.offset)
    else:
        result = alerts.list_alerts(chart_engine(), kind=filters["kind"], chart_id=chart_id, since=since,
                                    paging=paging)
    return render(request, viewer, "alerts.html", title="Alerts", nav="alerts", result=result, filters=filters,
                  kinds=KINDS, labels=LABELS, notes=notes)
