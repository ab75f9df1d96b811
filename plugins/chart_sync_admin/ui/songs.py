"""A song's audience across platforms (``/ui/songs/{song_uuid}``); opening a stale one refreshes it."""

from __future__ import annotations

from chartsync.services import audience
from chartsync.seam.orchestration import DagNotParsedYet
from chartsync.store.engine import chart_engine
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from chart_sync_admin.security import ViewerDep
from chart_sync_admin.ui.rendering import UI, render

router = APIRouter(prefix=UI, include_in_schema=False)


@router.get("/songs/{song_uuid}", response_class=HTMLResponse)
def song_page(request: Request, viewer: ViewerDep, song_uuid: str):
    view = audience.audience_view(chart_engine(), song_uuid)
    refresh, refresh_error = None, None
    if view.is_stale and not view.is_refreshing and viewer.can_run:
        try:  # opening the page is the request: one audience run per song at a time
            refresh = audience.request_refresh(chart_engine(), song_uuid, viewer.name)
        except DagNotParsedYet as exc:
            refresh_error = str(exc)
    refreshing = view.is_refreshing or (refresh is not None and refresh.status != "fresh")
    latest = {p: pts[-1] for p, pts in view.series.items() if pts}
    return render(request, viewer, "song.html", title=view.name, nav="charts", view=view, refreshing=refreshing,
                  refresh=refresh, refresh_error=refresh_error, plot=audience.svg_plot(view), latest=latest,
                  platform_names=audience.PLATFORM_NAMES)
