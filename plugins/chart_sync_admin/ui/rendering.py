"""What a page answers: a rendered template, the error page, or Airflow's login page.

URLs are relative to where Airflow mounted the app (``/chart-sync``, under a ``base_url`` path too).
The templates and static files live beside the package's modules, in ``templates/`` and ``static/``.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote, urlencode, urlsplit

from chartsync.core import schedule
from chartsync.core.calendar import Frequency
from chartsync.core.rules import ACTIVE, INACTIVE, NOT_SCHEDULED, OVERDUE
from fastapi import Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from chart_sync_admin import csrf
from chart_sync_admin.errors import PageError
from chart_sync_admin.paths import URL_PREFIX
from chart_sync_admin.security import LoginRequired, Viewer
from chart_sync_admin.ui.formatting import FILTERS

PACKAGE_DIR = Path(__file__).parent.parent
STATIC_DIR = PACKAGE_DIR / "static"
UI = "/ui"
STATIC_PATH = f"{UI}/static"
PAGE_SIZE = 50
templates = Jinja2Templates(directory=PACKAGE_DIR / "templates")
templates.env.filters.update(FILTERS)
STATUS_LABELS = {ACTIVE: "Active", OVERDUE: "Overdue", INACTIVE: "Inactive", NOT_SCHEDULED: "Not scheduled"}
FREQUENCIES = [f.value for f in Frequency]
# The forms take their labels and limits from the one schedule validator (its messages use the same labels).
FIELD_LABELS = schedule.LABELS
LIMITS = {"custom_interval_hours": schedule.MAX_CUSTOM_HOURS, "deadline_hours": schedule.MAX_DEADLINE_HOURS,
          "cron_expression": schedule.MAX_CRON_LENGTH}


# -- URLs: relative to where Airflow mounted us (works under a base_url path too) ------------------------
def app_root(request: Request) -> str:
    return request.scope.get("root_path", "").rstrip("/")


def airflow_root(request: Request) -> str:
    root = app_root(request)
    return root[: -len(URL_PREFIX)] if root.endswith(URL_PREFIX) else ""


def page_url(request: Request, path: str, **params) -> str:
    query = urlencode({k: v for k, v in params.items() if v not in (None, "", False)})
    return f"{app_root(request)}{UI}{path}" + (f"?{query}" if query else "")


def is_page(request: Request) -> bool:
    """Whether the request is for one of the pages (its errors are answered in HTML, not JSON)."""
    return request.url.path.startswith(f"{app_root(request)}{UI}/")


def static_files() -> StaticFiles:
    return StaticFiles(directory=STATIC_DIR)


def flash_path(request: Request) -> str:
    """The path of the flash-message cookie: every page."""
    return f"{app_root(request)}{UI}"


# -- answers ---------------------------------------------------------------------------------------------
def render(request: Request, viewer: Viewer, template: str, status: int = 200, **context) -> Response:
    messages = csrf.load_flash(request.cookies.get(csrf.FLASH_COOKIE))
    airflow = airflow_root(request)
    response = templates.TemplateResponse(request, template, status_code=status, context={
        "viewer": viewer, "messages": messages, "csrf_field": csrf.FIELD,
        "url": lambda path, **params: page_url(request, path, **params),
        "static": lambda name: f"{app_root(request)}{STATIC_PATH}/{name}",
        "api": lambda path: f"{app_root(request)}/api{path}",  # the REST API, for what a page asks by script
        "airflow": lambda path: f"{airflow}{path}",
        "dag_url": lambda dag_id: f"{airflow}/dags/{quote(dag_id, safe='')}",
        # where a form returns to: this page (a form re-rendered by its POST: the page it was sent from)
        "here": getattr(request.state, "here", None)
        or request.url.path + (f"?{request.url.query}" if request.url.query else ""),
        "status_labels": STATUS_LABELS, "frequencies": FREQUENCIES, "field": FIELD_LABELS, "limits": LIMITS,
        # a form that failed validation, shown again as the user filled it in (forms.invalid_form)
        "form_values": getattr(request.state, "form_values", None),
        "form_error": getattr(request.state, "form_error", None),
        **context,
    })
    if messages:
        response.delete_cookie(csrf.FLASH_COOKIE, path=flash_path(request))
    return response


def error_page(request: Request, exc: PageError) -> Response:
    return templates.TemplateResponse(request, "error.html", status_code=exc.status, context={
        "title": exc.title, "message": exc.message, "viewer": None, "messages": [],
        "static": lambda name: f"{app_root(request)}{STATIC_PATH}/{name}",
        "url": lambda path, **params: page_url(request, path, **params), "nav": None})


def login_page(request: Request, _exc: LoginRequired) -> Response:
    """To Airflow's login page, which comes back to this page (a form's page, for a POST)."""
    if request.method == "GET":
        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    else:
        referer = urlsplit(request.headers.get("Referer") or "")
        mine = referer.path.startswith(f"{app_root(request)}{UI}/") and referer.netloc == request.url.netloc
        here = referer.path if mine else page_url(request, "/charts")
    target = f"{airflow_root(request)}/auth/login?{urlencode({'next': here})}"
    return RedirectResponse(target, status_code=303)
