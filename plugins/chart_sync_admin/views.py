"""The chart-sync admin pages: server-rendered HTML under ``/chart-sync/ui/``.

Thin like the REST API beside it: each page reads through ``chartsync`` services and renders a
Jinja2 template; each form POST checks the CSRF token and the caller's access, calls one service
and redirects back with a message of what happened (POST-redirect-GET). Access is Airflow's: the
REST API's ``dag_access`` checks (reads: DAG read access; writes: DAG edit access; triggers and
heals: DAG run creation too). A caller without a valid session is sent to Airflow's login page.
Plain HTML forms work without JavaScript; ``static/admin.js`` only adds confirm() dialogs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated
from urllib.parse import quote, urlencode, urlsplit

from airflow.api_fastapi.auth.managers.models.base_user import BaseUser
from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.api_fastapi.core_api.security import bearer_scheme, get_user
from chartsync.services import alerts
from chartsync.services import audience
from chartsync.services import coverage
from chartsync.services import gaps
from chartsync.store import pages
from chartsync.store import rankings
from chartsync.services import schedules
from chartsync.store import stats
from chartsync.store.engine import ChartDbConfigError, chart_engine
from chartsync.core.calendar import Frequency
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.security import HTTPAuthorizationCredentials
from fastapi.templating import Jinja2Templates
from starlette.datastructures import FormData

from chart_sync_admin import csrf
from chart_sync_admin.app import dag_access

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"
UI = "/ui"
PAGE_SIZE = 50
templates = Jinja2Templates(directory=HERE / "templates")
router = APIRouter(prefix=UI, include_in_schema=False)


def engine():
    try:
        return chart_engine()
    except ChartDbConfigError as exc:
        raise PageError(503, "Chart DB unavailable", str(exc)) from exc


# -- errors of the HTML side, answered as pages (see ``install``) ----------------------------------------
class LoginRequired(Exception):
    """No valid Airflow session: go to the login page and come back."""


class PageError(Exception):
    def __init__(self, status: int, title: str, message: str) -> None:
        super().__init__(message)
        self.status, self.title, self.message = status, title, message


# -- who is asking, and what they may do ----------------------------------------------------------------
@dataclass(frozen=True)
class Viewer:
    user: BaseUser
    can_edit: bool
    can_run: bool
    csrf_token: str

    @property
    def name(self) -> str:
        return self.user.get_name()

    @property
    def role(self) -> str:
        return str(getattr(self.user, "role", "") or "")


def _allowed(check, request: Request, user: BaseUser) -> bool:
    try:
        check(request, user)
    except HTTPException:
        return False
    return True


async def current_user(request: Request,
                       bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)] = None
                       ) -> BaseUser:
    """Airflow's ``get_user`` (bearer header or the UI's ``_token`` cookie); no valid one -> login."""
    try:
        return await get_user(request, _oauth_token=None, bearer_credentials=bearer)
    except HTTPException as exc:
        if exc.status_code in (401, 403):  # missing, expired or invalid token
            raise LoginRequired from exc
        raise


def reader(request: Request, user: Annotated[BaseUser, Depends(current_user)]) -> Viewer:
    if not _allowed(dag_access("GET"), request, user):
        raise PageError(403, "Not allowed", "Your Airflow role may not read DAGs, so it may not see chart-sync.")
    can_edit = _allowed(dag_access("PUT"), request, user)
    can_run = can_edit and _allowed(dag_access("POST", DagAccessEntity.RUN), request, user)
    return Viewer(user, can_edit, can_run, csrf.token_for(csrf.credential(request)))


async def posted_form(request: Request, viewer: Annotated[Viewer, Depends(reader)]) -> FormData:
    """The form of a write: DAG edit access, same origin and the caller's CSRF token."""
    if not viewer.can_edit:
        raise PageError(403, "Not allowed", "Your Airflow role may read chart-sync but not change it.")
    form = await request.form()
    try:
        csrf.check(request, form.get(csrf.FIELD))
    except csrf.CsrfRefused as exc:
        raise PageError(403, "Form refused", str(exc)) from exc
    return form


ViewerDep = Annotated[Viewer, Depends(reader)]
FormDep = Annotated[FormData, Depends(posted_form)]


def _require_run(viewer: Viewer) -> None:
    if not viewer.can_run:
        raise PageError(403, "Not allowed", "Your Airflow role may not create DAG runs.")


# -- URLs: relative to where Airflow mounted us (works under a base_url path too) ------------------------
def _app_root(request: Request) -> str:
    return request.scope.get("root_path", "").rstrip("/")


def _airflow_root(request: Request) -> str:
    from chart_sync_admin import URL_PREFIX

    root = _app_root(request)
    return root[: -len(URL_PREFIX)] if root.endswith(URL_PREFIX) else ""


def page_url(request: Request, path: str, **params) -> str:
    query = urlencode({k: v for k, v in params.items() if v not in (None, "", False)})
    return f"{_app_root(request)}{UI}{path}" + (f"?{query}" if query else "")


def _back(request: Request, form: FormData, default: str) -> str:
    """Where a POST returns to: the page it came from (``next``), only if it is one of ours."""
    target = str(form.get("next") or "")
    mine = f"{_app_root(request)}{UI}/"
    return target if target.startswith(mine) and "//" not in target[len(mine):] else page_url(request, default)


# -- formatting for the templates ------------------------------------------------------------------------
def fmt_datetime(value: datetime | None) -> str:
    return stats.aware(value).strftime("%Y-%m-%d %H:%M UTC") if value else "—"


def fmt_ago(value: datetime | None) -> str:
    if value is None:
        return "never"
    seconds = (datetime.now(UTC) - stats.aware(value)).total_seconds()
    return ("in " if seconds < 0 else "") + fmt_age(abs(seconds)) + ("" if seconds < 0 else " ago")


def fmt_age(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}" if seconds < 10 * size else f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} s"


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    return f"{seconds:.2f} s" if seconds < 60 else fmt_age(seconds)


def fmt_percent(rate: float | None) -> str:
    return "—" if rate is None else f"{rate * 100:.1f}%".replace(".0%", "%")


def rate_class(rate: float | None) -> str:
    if rate is None:
        return "rate-none"
    return "rate-good" if rate >= 0.95 else "rate-warn" if rate >= 0.8 else "rate-bad"


def fmt_number(value) -> str:
    return "—" if value is None else f"{value:,}"


def fmt_next_sync(dag) -> str:
    """When Airflow creates the DAG's next run: a catching-up DAG's is already due."""
    if dag is None:
        return "DAG not parsed yet"
    if dag.is_paused:
        return "paused"
    if dag.next_dagrun is None:
        return "—"
    return "due now" if stats.aware(dag.next_dagrun) <= datetime.now(UTC) else fmt_ago(dag.next_dagrun)


templates.env.filters.update(datetime=fmt_datetime, ago=fmt_ago, age=fmt_age, duration=fmt_duration,
                             percent=fmt_percent, rate_class=rate_class, number=fmt_number,
                             next_sync=fmt_next_sync)
STATUS_LABELS = {pages.ACTIVE: "Active", pages.OVERDUE: "Overdue", pages.INACTIVE: "Inactive",
                 pages.NOT_SCHEDULED: "Not scheduled"}
FREQUENCIES = [f.value for f in Frequency]


def render(request: Request, viewer: Viewer, template: str, status: int = 200, **context) -> Response:
    messages = csrf.load_flash(request.cookies.get(csrf.FLASH_COOKIE))
    airflow = _airflow_root(request)
    response = templates.TemplateResponse(request, template, status_code=status, context={
        "viewer": viewer, "messages": messages, "csrf_field": csrf.FIELD,
        "url": lambda path, **params: page_url(request, path, **params),
        "static": lambda name: f"{_app_root(request)}{UI}/static/{name}",
        "airflow": lambda path: f"{airflow}{path}",
        "dag_url": lambda dag_id: f"{airflow}/dags/{quote(dag_id, safe='')}",
        "here": request.url.path + (f"?{request.url.query}" if request.url.query else ""),
        "status_labels": STATUS_LABELS, "frequencies": FREQUENCIES, **context,
    })
    if messages:
        response.delete_cookie(csrf.FLASH_COOKIE, path=_flash_path(request))
    return response


def _flash_path(request: Request) -> str:
    return f"{_app_root(request)}{UI}"


def redirect(request: Request, target: str, messages: list[dict]) -> RedirectResponse:
    response = RedirectResponse(target, status_code=303)
    if messages:
        response.set_cookie(csrf.FLASH_COOKIE, csrf.dump_flash(messages), path=_flash_path(request),
                            max_age=csrf.FLASH_MAX_AGE, httponly=True, samesite="lax",
                            secure=request.url.scheme == "https")
    return response


def message(level: str, text: str, details: list[str] | None = None) -> dict:
    """One flash message; details are capped so the cookie stays small."""
    details = details or []
    shown = [d[:240] for d in details[:12]]
    if len(details) > len(shown):
        shown.append(f"... and {len(details) - len(shown)} more")
    return {"level": level, "text": text[:300], "details": shown}


# -- query parameters, read leniently (a bad hand-edited URL falls back to the default) -----------------
def _int(request: Request, name: str, default: int, low: int = 1, high: int = 1_000_000) -> int:
    try:
        return min(max(int(request.query_params.get(name, default)), low), high)
    except ValueError:
        return default


def _choice(request: Request, name: str, allowed, default=None):
    value = request.query_params.get(name) or None
    return value if value in allowed else default


def _text(request: Request, name: str, limit: int = 100) -> str | None:
    value = (request.query_params.get(name) or "").replace("\x00", "").strip()
    return value[:limit] or None


def _date(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


def _ids(form: FormData, name: str) -> list[int]:
    ids = []
    for value in form.getlist(name):
        try:
            ids.append(int(value))
        except (TypeError, ValueError):
            continue
    return list(dict.fromkeys(i for i in ids if 0 < i < 2**31))[:500]


# -- pages -----------------------------------------------------------------------------------------------
@router.get("/", name="ui_home")
def home(request: Request, viewer: ViewerDep):
    return RedirectResponse(page_url(request, "/charts"), status_code=303)


@router.get("/charts", response_class=HTMLResponse)
def charts_page(request: Request, viewer: ViewerDep):
    filters = {"q": _text(request, "q"), "platform": _text(request, "platform", 50),
               "status": _choice(request, "status", pages.CHART_STATUSES),
               "frequency": _choice(request, "frequency", FREQUENCIES)}
    result = pages.chart_catalogue(engine(), search=filters["q"], platform=filters["platform"],
                                   status=filters["status"], frequency=filters["frequency"],
                                   page=_int(request, "page", 1), page_size=PAGE_SIZE)
    return render(request, viewer, "charts.html", title="Charts", nav="charts", result=result, filters=filters,
                  platforms=pages.platforms(engine()))


CHART_ACTIONS = {"add": "Add to sync schedule", "remove": "Remove from sync schedule",
                 "trigger": "Trigger manual sync"}
SCHEDULE_ACTIONS = {"activate": "Activate", "deactivate": "Deactivate", "trigger": "Trigger manual sync",
                    "heal": "Heal gaps"}


@router.post("/charts/bulk")
def charts_bulk(request: Request, viewer: ViewerDep, form: FormDep):
    action = form.get("action")
    if action not in CHART_ACTIONS:
        return redirect(request, _back(request, form, "/charts"), [message("error", "Choose an action.")])
    chart_ids = _ids(form, "chart_id")
    if not chart_ids:
        return redirect(request, _back(request, form, "/charts"), [message("error", "Select at least one chart.")])
    options = None
    if action == "add":
        try:
            options = _add_options(form)
        except ValueError as exc:
            return redirect(request, _back(request, form, "/charts"), [message("error", str(exc))])
    if action == "trigger":
        _require_run(viewer)
    if form.get("confirmed") != "1":
        return _confirm(request, viewer, form, CHART_ACTIONS[action], pages.chart_names(engine(), chart_ids),
                        options)
    items = schedules.bulk(engine(), action, chart_ids, actor=viewer.name, options=options)
    return redirect(request, _back(request, form, "/charts"), [_bulk_message(CHART_ACTIONS[action], items)])


def _add_options(form: FormData) -> dict:
    frequency = form.get("frequency") or None
    if frequency is not None and frequency not in FREQUENCIES:
        raise ValueError(f"unknown frequency {frequency!r}")
    options = {"sync_frequency": frequency, "sync_immediately": form.get("sync_immediately") == "on",
               "sync_historical_data": form.get("sync_historical_data") == "on"}
    if frequency == "custom":
        options["custom_interval_hours"] = _form_int(form, "custom_interval_hours", "custom interval (hours)")
    if frequency == "cron":
        options["cron_expression"] = (form.get("cron_expression") or "").strip()[:100] or None
    return options


def _form_int(form: FormData, name: str, label: str) -> int | None:
    value = (form.get(name) or "").strip()
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{label}: {value[:20]!r} is not a whole number") from None


def _form_float(form: FormData, name: str, label: str) -> float | None:
    value = (form.get(name) or "").strip()
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"{label}: {value[:20]!r} is not a number") from None


def _confirm(request: Request, viewer: Viewer, form: FormData, label: str, names: list[str],
             options: dict | None = None, default: str = "/charts") -> Response:
    """The confirmation step without JavaScript: the same form again, with confirmed=1."""
    hidden = [(k, v) for k, v in form.multi_items() if k not in (csrf.FIELD, "confirmed")]
    return render(request, viewer, "confirm.html", title=f"Confirm: {label}", nav=None, label=label, names=names,
                  hidden=hidden, options=options, action_url=request.url.path,
                  back=_back(request, form, default))


def _bulk_message(label: str, items: list[schedules.BulkItem]) -> dict:
    counts: dict[str, int] = {}
    for item in items:
        counts[item.outcome] = counts.get(item.outcome, 0) + 1
    ok = counts.get("done", 0) + counts.get("unchanged", 0)
    level = "success" if ok == len(items) else "error" if ok == 0 else "warning"
    summary = ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items()))
    return message(level, f"{label}: {summary}.", [item.message for item in items])


def _heal_message(results: list[gaps.HealResult]) -> dict:
    counts: dict[str, int] = {}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    ok = counts.get("created", 0) + counts.get("nothing-to-heal", 0) + counts.get("already-running", 0)
    level = "success" if ok == len(results) and counts.get("created") else "warning" if ok else "error"
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "no schedule selected"
    return message(level, f"Heal gaps: {summary}.", [f"{r.dag_id}: {r.message}" for r in results])


@router.get("/schedules", response_class=HTMLResponse)
def schedules_page(request: Request, viewer: ViewerDep):
    filters = {"q": _text(request, "q"), "platform": _text(request, "platform", 50),
               "status": _choice(request, "status", pages.SCHEDULE_STATUSES),
               "frequency": _choice(request, "frequency", FREQUENCIES),
               "sort": _choice(request, "sort", pages.SCHEDULE_SORTS, "chart"),
               "desc": request.query_params.get("desc") == "1"}
    result = pages.schedule_table(engine(), search=filters["q"], platform=filters["platform"],
                                  frequency=filters["frequency"], status=filters["status"], sort=filters["sort"],
                                  descending=filters["desc"], page=_int(request, "page", 1), page_size=PAGE_SIZE)
    return render(request, viewer, "schedules.html", title="Sync schedules", nav="schedules", result=result,
                  filters=filters, platforms=pages.platforms(engine()))


@router.post("/schedules/bulk")
def schedules_bulk(request: Request, viewer: ViewerDep, form: FormDep):
    single = str(form.get("single") or "")
    if single:  # a row's own button: "<action>:<schedule id>"
        action, _, one = single.partition(":")
        schedule_ids = [int(one)] if one.isdigit() else []
    else:
        action, schedule_ids = str(form.get("action") or ""), _ids(form, "schedule_id")
    return _schedule_action(request, viewer, form, action, schedule_ids, "/schedules")


@router.post("/schedules/{schedule_id}/action")
def schedule_action(request: Request, viewer: ViewerDep, form: FormDep, schedule_id: int):
    return _schedule_action(request, viewer, form, str(form.get("action") or ""), [schedule_id],
                            f"/schedules/{schedule_id}")


def _schedule_action(request: Request, viewer: Viewer, form: FormData, action: str, schedule_ids: list[int],
                     default: str) -> Response:
    back = _back(request, form, default)
    if action not in SCHEDULE_ACTIONS:
        return redirect(request, back, [message("error", "Choose an action.")])
    rows = schedules.rows_by_id(engine(), schedule_ids)
    if not rows:
        return redirect(request, back, [message("error", "Select at least one schedule.")])
    if action in ("trigger", "heal"):
        _require_run(viewer)
    if form.get("confirmed") != "1":
        return _confirm(request, viewer, form, SCHEDULE_ACTIONS[action], [f"{r.name} ({r.slug})" for r in rows],
                        default=default)
    if action == "heal":
        results = gaps.heal_audited(engine(), [r.slug for r in rows], viewer.name)
        return redirect(request, back, [_heal_message(results)])
    items = schedules.bulk(engine(), action, [r.chart_id for r in rows], actor=viewer.name)
    return redirect(request, back, [_bulk_message(SCHEDULE_ACTIONS[action], items)])


@router.get("/schedules/{schedule_id}", response_class=HTMLResponse)
def schedule_page(request: Request, viewer: ViewerDep, schedule_id: int):
    try:
        detail = schedules.schedule_detail(engine(), schedule_id, history=0)
    except schedules.ScheduleNotFound as exc:
        raise PageError(404, "No such schedule", str(exc)) from exc
    row = schedules.get_schedule(engine(), schedule_id)
    try:
        config = schedules.ScheduleConfig.from_row(row)
        strip, strip_error = coverage.coverage_strip(engine(), config), None
    except schedules.ScheduleError as exc:
        config, strip, strip_error = None, [], str(exc)
    counts = {status: 0 for status in coverage.STATUSES}
    for cell in strip:
        counts[cell.status] += 1
    history = pages.execution_history(engine(), row.chart_id, page=_int(request, "page", 1), page_size=25)
    return render(request, viewer, "schedule.html", title=row.name, nav="schedules", s=detail, config=config,
                  strip=strip, strip_counts=counts, strip_error=strip_error, history=history,
                  gaps=gaps.list_gaps(engine(), row.chart_id), coverage_row=stats.coverage(engine(), row.chart_id),
                  deadline=_deadline_text(row))


def _deadline_text(row) -> str:
    try:
        hours = alerts.deadline_hours(row.sync_frequency, row.deadline_hours, row.custom_interval_hours,
                                      row.cron_expression)
    except (ValueError, KeyError):
        return "—"
    return f"{hours:g} h after the period ends" + ("" if row.deadline_hours else " (the frequency's default)")


@router.post("/schedules/{schedule_id}/config")
def schedule_config(request: Request, viewer: ViewerDep, form: FormDep, schedule_id: int):
    back = page_url(request, f"/schedules/{schedule_id}")
    frequency = str(form.get("sync_frequency") or "")
    try:
        changes = {
            "is_active": form.get("is_active") == "on",
            "sync_frequency": frequency,
            "custom_interval_hours": _form_int(form, "custom_interval_hours", "custom_interval_hours")
            if frequency == "custom" else None,
            "cron_expression": ((form.get("cron_expression") or "").strip()[:100] or None)
            if frequency == "cron" else None,
            "sync_immediately": form.get("sync_immediately") == "on",
            "sync_historical_data": form.get("sync_historical_data") == "on",
            "fetch_track_metadata": form.get("fetch_track_metadata") == "on",
            "deadline_hours": _form_float(form, "deadline_hours", "deadline_hours"),
        }
        change = schedules.update_schedule(engine(), schedule_id, changes, actor=viewer.name)
    except schedules.ScheduleNotFound as exc:
        raise PageError(404, "No such schedule", str(exc)) from exc
    except schedules.ScheduleError as exc:
        return redirect(request, back, [message("error", f"Nothing saved: {exc.field}: {exc.message}")])
    except ValueError as exc:
        return redirect(request, back, [message("error", f"Nothing saved: {exc}")])
    text = f"Configuration saved. {change.message}." if change.changed else "Nothing changed."
    return redirect(request, back, [message("success", text)])


@router.get("/charts/{chart_id}/ranking", response_class=HTMLResponse)
def ranking_page(request: Request, viewer: ViewerDep, chart_id: int):
    filters = {"period": _date(request.query_params.get("period")), "q": _text(request, "q"),
               "trend": _choice(request, "trend", rankings.TRENDS),
               "sort": _choice(request, "sort", tuple(rankings.SORTS), "position"),
               "desc": request.query_params.get("desc") == "1"}
    try:
        ranking = rankings.ranking_page(engine(), chart_id, filters["period"], sort=filters["sort"],
                                        descending=filters["desc"], trend=filters["trend"], search=filters["q"],
                                        page=_int(request, "page", 1))
    except rankings.RankingNotFound as exc:
        raise PageError(404, "No ranking", str(exc)) from exc
    schedule = schedules.schedule_of_chart(engine(), chart_id)
    return render(request, viewer, "ranking.html", title=f"{ranking.chart_name} {ranking.period}", nav="charts",
                  r=ranking, filters=filters, trends=rankings.TRENDS, schedule_id=schedule.id if schedule else None)


STATS_WINDOWS = (7, 30, 90, 365)


@router.get("/stats", response_class=HTMLResponse)
def stats_page(request: Request, viewer: ViewerDep):
    from chartsync.core import plots

    days = _int(request, "days", 30, 1, 3660)
    days = days if days in STATS_WINDOWS else 30
    now = datetime.now(UTC)
    overall = stats.overall_stats(engine(), since=now - timedelta(days=days), now=now)
    daily = pages.daily_stats(engine(), days, now=now)
    stalest = pages.stalest_schedules(engine(), now=now)
    distribution = pages.freshness_distribution(engine(), now=now)
    slowest = pages.slowest_charts(engine(), days, now=now)

    first = next((i for i, d in enumerate(daily) if d.executions), len(daily))

    def series(name, value):  # from the first day with an execution, so every plot spans the same days
        return plots.Series(name, [(d.day, value(d) if i >= first else None) for i, d in enumerate(daily)])

    fresh = [f for f in stalest if f.value is not None]
    scale, unit = _age_unit(max((f.value for f in fresh), default=0))
    plots_svg = {
        "success_rate": plots.line_chart(
            "Success rate per day", [series("success rate", lambda d: None if d.success_rate is None
                                            else d.success_rate * 100)], unit="%", y_max=100, y_label="success rate"),
        "duration": plots.line_chart("Average duration per day",
                                     [series("average", lambda d: d.average_duration_seconds)], unit=" s",
                                     y_label="seconds"),
        "syncs": plots.line_chart("Syncs per day", [series("successful", lambda d: d.successful),
                                                    series("failed", lambda d: d.failed),
                                                    series("skipped", lambda d: d.skipped)], y_label="executions"),
        "freshness": plots.bar_chart(f"Stalest active schedules ({unit} since the last successful sync)",
                                     [(f.name, f.value / scale) for f in fresh], unit=f" {unit}"),
        "distribution": plots.bar_chart("Active schedules by freshness", [(k, float(v)) for k, v in distribution]),
        "slowest": plots.bar_chart(f"Slowest charts (mean duration, last {days} days)",
                                   [(f.name, f.value or 0.0) for f in slowest], unit=" s"),
    }
    return render(request, viewer, "stats.html", title="Sync statistics", nav="stats", days=days,
                  windows=STATS_WINDOWS, overall=overall, daily=daily, stalest=stalest, distribution=distribution,
                  slowest=slowest, plots=plots_svg)


def _age_unit(seconds: float) -> tuple[float, str]:
    """A unit that keeps freshness bars readable: minutes, hours or days."""
    if seconds < 2 * 3600:
        return 60.0, "min"
    return (3600.0, "h") if seconds < 3 * 86400 else (86400.0, "days")


ALERT_PAGE_SIZE = 50


@router.get("/alerts", response_class=HTMLResponse)
def alerts_page(request: Request, viewer: ViewerDep):
    from chartsync.services.charts import ChartNotFound, get_chart

    filters = {"kind": _choice(request, "kind", alerts.KINDS), "chart": _text(request, "chart", 200),
               "days": _choice(request, "days", ("1", "7", "30", "365"))}
    chart_id, notes = None, []
    if filters["chart"]:
        try:
            chart_id = get_chart(engine(), slug=filters["chart"]).id
        except ChartNotFound:
            notes.append(message("warning", f"No chart with the slug {filters['chart']!r}."))
    page = _int(request, "page", 1)
    since = datetime.now(UTC) - timedelta(days=int(filters["days"])) if filters["days"] else None
    if filters["chart"] and chart_id is None:
        items, total = [], 0
    else:
        items, total = alerts.list_alerts(engine(), kind=filters["kind"], chart_id=chart_id, since=since,
                                          limit=ALERT_PAGE_SIZE, offset=(page - 1) * ALERT_PAGE_SIZE)
    result = pages.Page(items, total, page, ALERT_PAGE_SIZE)
    return render(request, viewer, "alerts.html", title="Alerts", nav="alerts", result=result, filters=filters,
                  kinds=alerts.KINDS, labels=alerts.LABELS, notes=notes)


@router.get("/songs/{song_uuid}", response_class=HTMLResponse)
def song_page(request: Request, viewer: ViewerDep, song_uuid: str):
    from chartsync.seam.orchestration import DagNotParsedYet

    try:
        view = audience.audience_view(engine(), song_uuid)
    except audience.TrackNotFound as exc:
        raise PageError(404, "No such song", str(exc)) from exc
    refresh, refresh_error = None, None
    if view.is_stale and not view.is_refreshing and viewer.can_run:
        try:  # opening the page is the request: one audience run per song at a time
            refresh = audience.request_refresh(engine(), song_uuid, viewer.name)
        except DagNotParsedYet as exc:
            refresh_error = str(exc)
    refreshing = view.is_refreshing or (refresh is not None and refresh.status != "fresh")
    latest = {p: pts[-1] for p, pts in view.series.items() if pts}
    return render(request, viewer, "song.html", title=view.name, nav="charts", view=view, refreshing=refreshing,
                  refresh=refresh, refresh_error=refresh_error, plot=audience.svg_plot(view), latest=latest,
                  platform_names=audience.PLATFORM_NAMES)


# -- wiring: the HTML side's error pages, installed by ``create_app`` -------------------------------------
def install(app) -> None:
    from fastapi.staticfiles import StaticFiles

    app.include_router(router)
    app.mount(f"{UI}/static", StaticFiles(directory=STATIC_DIR), name="chart_sync_ui_static")

    def login(request: Request, _exc: LoginRequired) -> Response:
        """To Airflow's login page, which comes back to this page (a form's page, for a POST)."""
        if request.method == "GET":
            here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        else:
            referer = urlsplit(request.headers.get("Referer") or "")
            mine = referer.path.startswith(f"{_app_root(request)}{UI}/") and referer.netloc == request.url.netloc
            here = referer.path if mine else page_url(request, "/charts")
        target = f"{_airflow_root(request)}/auth/login?{urlencode({'next': here})}"
        return RedirectResponse(target, status_code=303)

    def page_error(request: Request, exc: PageError) -> Response:
        return templates.TemplateResponse(request, "error.html", status_code=exc.status, context={
            "title": exc.title, "message": exc.message, "viewer": None, "messages": [],
            "static": lambda name: f"{_app_root(request)}{UI}/static/{name}",
            "url": lambda path, **params: page_url(request, path, **params), "nav": None})

    app.add_exception_handler(LoginRequired, login)
    app.add_exception_handler(PageError, page_error)
