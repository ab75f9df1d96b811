"""The audit log (``/ui/audit``): who changed which schedule, chart or backfill, newest first."""

from __future__ import annotations

from chartsync.core.paging import PageRequest
from chartsync.store import audit
from chartsync.store.engine import chart_engine
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from chart_sync_admin.door import MAX_ID
from chart_sync_admin.security import ViewerDep
from chart_sync_admin.ui.forms import query_choice, query_int, query_text
from chart_sync_admin.ui.rendering import PAGE_SIZE, UI, render

router = APIRouter(prefix=UI, include_in_schema=False)
TARGETS = (audit.SCHEDULE, audit.CHART, audit.BACKFILL)


@router.get("/audit", response_class=HTMLResponse)
def audit_page(request: Request, viewer: ViewerDep):
    filters = {"actor": query_text(request, "actor", 250), "target": query_choice(request, "target", TARGETS),
               "target_id": query_int(request, "target_id", 0, 0, MAX_ID) or None}
    result = audit.entries(chart_engine(), actor=filters["actor"], entity=filters["target"],
                           entity_id=filters["target_id"],
                           paging=PageRequest.number(query_int(request, "page", 1), PAGE_SIZE))
    return render(request, viewer, "audit.html", title="Audit log", nav="audit", result=result, filters=filters,
                  targets=TARGETS, actors=audit.actors(chart_engine()))
