"""A song's audience across platforms (``/ui/songs/{song_uuid}``) and its "Fetch now" (a POST).

Opening the page changes nothing: it shows the stored audience and its age. A stale one is fetched
by a POST, the button's, or the page's own form that submits itself (with JavaScript, for roles that
may create DAG runs): one ``chart_sync_audience`` run per song at a time.
"""

from __future__ import annotations

from chartsync.services import audience
from chartsync.settings import AUDIENCE_DAG_ID
from chartsync.seam.orchestration import DagNotParsedYet
from chartsync.store.engine import chart_engine
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from chart_sync_admin.security import FormDep, ViewerDep, require_run
from chart_sync_admin.ui.forms import dag_link, message, redirect, run_link
from chart_sync_admin.ui.rendering import UI, page_url, render

router = APIRouter(prefix=UI, include_in_schema=False)


@router.get("/songs/{song_uuid}", response_class=HTMLResponse)
def song_page(request: Request, viewer: ViewerDep, song_uuid: str):
    view = audience.audience_view(chart_engine(), song_uuid)
    latest = {p: pts[-1] for p, pts in view.series.items() if pts}
    return render(request, viewer, "song.html", title=view.name, nav="charts", view=view,
                  refreshing=view.is_refreshing, plot=audience.svg_plot(view), latest=latest,
                  platform_names=audience.PLATFORM_NAMES, audience_dag=AUDIENCE_DAG_ID)


@router.post("/songs/{song_uuid}/fetch")
def song_fetch(request: Request, viewer: ViewerDep, form: FormDep, song_uuid: str):
    """Fetch the audience now: a run of the audience DAG (or the one already queued or running)."""
    require_run(viewer)
    to = page_url(request, f"/songs/{song_uuid}")
    try:  # "Fetch now" forces a run; the page's automatic POST only asks when the data is stale
        refresh = audience.request_refresh(chart_engine(), song_uuid, viewer.name, force=form.get("force") == "1")
    except DagNotParsedYet as exc:
        return redirect(request, to, [message("error", f"Not fetched: {exc}")])
    if refresh.status == "fresh":
        return redirect(request, to, [message("info", "The audience is fresh: nothing fetched.")])
    text = {"triggered": "Fetching the audience", "already-refreshing": "Already fetching the audience"}[refresh.status]
    paused = " The DAG is paused: the run waits until it is unpaused." if refresh.dag_paused else ""
    return redirect(request, to, [message("success", f"{text}: run {refresh.run_id} ({refresh.run_state}).{paused}",
                                          links=[run_link(AUDIENCE_DAG_ID, refresh.run_id),
                                                 dag_link(AUDIENCE_DAG_ID)])])
