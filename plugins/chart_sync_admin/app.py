"""The chart-sync app the Airflow API server mounts under ``/chart-sync``: the REST API and the pages.

Only wiring: the REST API's router (``api``, in the OpenAPI spec), the pages' routers and static
files (``ui``, not in the spec), the checks every request passes first (``door``), and one error
table (``errors``) for both: a domain exception or a refused request is answered with the same
status through either door, in JSON by the API and as the HTML error page by the pages. Built by
``DeferredApp`` on the API server's first request.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response

from chart_sync_admin import door, errors
from chart_sync_admin.api import routes as api_routes
from chart_sync_admin.security import LoginRequired
from chart_sync_admin.ui import airflow_tabs, alerts, audit, charts, rankings, rendering, schedules, songs, stats

UI_ROUTERS = (charts.router, schedules.router, rankings.router, stats.router, alerts.router, songs.router,
              audit.router, airflow_tabs.router)


def create_app() -> FastAPI:
    app = FastAPI(
        title="chart-sync",
        version="1",
        description="Sync schedules of the chart-sync DAGs (one Airflow DAG per scheduled chart). "
        "Authenticate like the Airflow REST API: `Authorization: Bearer <JWT from POST /auth/token>` "
        "or the Airflow UI's session cookie.",
    )
    app.include_router(api_routes.router)
    for router in UI_ROUTERS:
        app.include_router(router)
    app.mount(rendering.STATIC_PATH, rendering.static_files(), name="chart_sync_ui_static")
    for exc_type in errors.ERRORS:
        app.add_exception_handler(exc_type, _domain_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(errors.PageError, rendering.error_page)
    app.add_exception_handler(LoginRequired, rendering.login_page)
    app.add_middleware(door.Door, answer=_refused)
    return app


def _domain_error(request: Request, exc: Exception) -> Response:
    """One table, two doors: the HTML error page for a page, JSON for the REST API."""
    if rendering.is_page(request):
        return rendering.error_page(request, errors.page_error(exc))
    return errors.json_response(exc)


def _invalid_request(request: Request, exc: RequestValidationError) -> Response:
    """A page validates only the ids in its path: one that is not an id names no page."""
    if rendering.is_page(request):
        return rendering.error_page(request, errors.PageError(404, "No such page", "That address names no page."))
    return errors.invalid_request(request, exc)


def _refused(request: Request, refusal: door.Refusal) -> Response:
    if rendering.is_page(request):
        return rendering.error_page(request, errors.PageError(refusal.status, refusal.title, refusal.message))
    return errors.refusal_response(refusal)
