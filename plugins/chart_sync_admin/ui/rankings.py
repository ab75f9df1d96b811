"""A chart's ranking for one period (``/ui/charts/{chart_id}/ranking``): filter, sort, page."""

from __future__ import annotations

from chartsync.core.schedule import dag_id_for
from chartsync.store import ranking_pages as rankings
from chartsync.services import quality
from chartsync.services import schedules
from chartsync.store.engine import chart_engine
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from chart_sync_admin.door import PathId
from chart_sync_admin.security import ViewerDep
from chart_sync_admin.ui.forms import iso_date, query_choice, query_int, query_text
from chart_sync_admin.ui.rendering import UI, render

router = APIRouter(prefix=UI, include_in_schema=False)


@router.get("/charts/{chart_id}/ranking", response_class=HTMLResponse)
def ranking_page(request: Request, viewer: ViewerDep, chart_id: PathId):
    filters = {"period": iso_date(request.query_params.get("period")), "q": query_text(request, "q"),
               "trend": query_choice(request, "trend", rankings.TRENDS),
               "sort": query_choice(request, "sort", tuple(rankings.SORTS), "position"),
               "desc": request.query_params.get("desc") == "1"}
    ranking = rankings.ranking_page(chart_engine(), chart_id, filters["period"], sort=filters["sort"],
                                    descending=filters["desc"], trend=filters["trend"], search=filters["q"],
                                    page=query_int(request, "page", 1))
    schedule = schedules.schedule_of_chart(chart_engine(), chart_id)
    return render(request, viewer, "ranking.html", title=f"{ranking.chart_name} {ranking.period}", nav="charts",
                  r=ranking, filters=filters, trends=rankings.TRENDS, schedule_id=schedule.id if schedule else None,
                  dag_id=dag_id_for(ranking.slug) if schedule else None,
                  quality=quality.ranking_quality(chart_engine(), chart_id, ranking.period),
                  flag_labels=quality.FLAG_LABELS)
