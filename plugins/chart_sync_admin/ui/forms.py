"""What a page reads from its request, and what a form POST answers.

Query parameters are read leniently: a bad hand-edited URL falls back to the default. Numbers are
read as typed in ASCII digits only (``door.whole_number``): ``²`` or ``١`` is not a number. A form POST
answers POST-redirect-GET: a redirect back to its page with flash messages of what happened (a
signed cookie the next page shows once), or first, without JavaScript, a confirmation step.
"""

from __future__ import annotations

import re
from datetime import date
from urllib.parse import quote

from chartsync.core import schedule
from chartsync.core.quota import Estimate
from chartsync.services import budget
from chartsync.services import gaps
from chartsync.services import schedules
from fastapi import Request
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import FormData

from chart_sync_admin import csrf
from chart_sync_admin.door import MAX_ID, whole_number
from chart_sync_admin.errors import PageError
from chart_sync_admin.security import Viewer
from chart_sync_admin.ui.rendering import FREQUENCIES, UI, app_root, flash_path, page_url, render


# -- query parameters ------------------------------------------------------------------------------------
def query_int(request: Request, name: str, default: int, low: int = 1, high: int = 1_000_000) -> int:
    value = whole_number(request.query_params.get(name, ""))
    return default if value is None else min(max(value, low), high)


def query_choice(request: Request, name: str, allowed, default=None):
    value = request.query_params.get(name) or None
    return value if value in allowed else default


def query_text(request: Request, name: str, limit: int = 100) -> str | None:
    value = (request.query_params.get(name) or "").replace("\x00", "").strip()
    return value[:limit] or None


def list_filters(request: Request, statuses) -> dict:
    """The filter form of a list page (the charts, the schedules): search text, platform, status, frequency."""
    return {"q": query_text(request, "q"), "platform": query_text(request, "platform", 50),
            "status": query_choice(request, "status", statuses),
            "frequency": query_choice(request, "frequency", FREQUENCIES)}


def iso_date(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


# -- form fields -----------------------------------------------------------------------------------------
def ids(values) -> list[int]:
    """Form values that name ids, each once, in order (at most 500); one that names none refuses the form."""
    found = []
    for value in values:
        number = whole_number(value) if isinstance(value, str) else None
        if number is None or not 0 < number <= MAX_ID:
            raise PageError(422, "Invalid form", f"{str(value)[:40]!r} is not an id (plain digits, 1 to {MAX_ID})")
        found.append(number)
    return list(dict.fromkeys(found))[:500]


def form_ids(form: FormData, name: str) -> list[int]:
    return ids(form.getlist(name))


_INTEGER = re.compile("[+-]?[0-9]+")
_DECIMAL = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?")


def form_int(form: FormData, name: str) -> int | str | None:
    """A whole number, or the text as typed (the schedule validator names what is wrong with it)."""
    value = str(form.get(name) or "").strip()[:50]
    return int(value) if _INTEGER.fullmatch(value) else value or None


def form_float(form: FormData, name: str) -> float | str | None:
    """A number, or the text as typed (the schedule validator names what is wrong with it: "nan", "١")."""
    value = str(form.get(name) or "").strip()[:50]
    return float(value) if _DECIMAL.fullmatch(value) else value or None


def add_options(form: FormData) -> dict:
    """The settings of charts added to the sync schedule (the schedule service validates them)."""
    frequency = str(form.get("frequency") or "")[:50] or None
    options = {"sync_frequency": frequency, "sync_immediately": form.get("sync_immediately") == "on",
               "sync_historical_data": form.get("sync_historical_data") == "on"}
    if frequency == "custom":
        options["custom_interval_hours"] = form_int(form, "custom_interval_hours")
    if frequency == "cron":
        options["cron_expression"] = (form.get("cron_expression") or "").strip()[:100] or None
    schedule.validate_settings(slug=None, chart_frequency=None, sync_frequency=frequency,
                               custom_interval_hours=options.get("custom_interval_hours"),
                               cron_expression=options.get("cron_expression"))
    return options


def back(request: Request, form: FormData, default: str) -> str:
    """Where a POST returns to: the page it came from (``next``), only if it is one of ours."""
    target = str(form.get("next") or "")
    mine = f"{app_root(request)}{UI}/"
    return target if target.startswith(mine) and "//" not in target[len(mine):] else page_url(request, default)


# -- answers of a POST -------------------------------------------------------------------------------------
def confirm(request: Request, viewer: Viewer, form: FormData, label: str, names: list[str],
            options: dict | None = None, default: str = "/charts", estimate: Estimate | None = None) -> Response:
    """The confirmation step without JavaScript: the same form again, with confirmed=1; work that costs API
    calls shows its estimate beside the quota left."""
    hidden = [(k, v) for k, v in form.multi_items() if k not in (csrf.FIELD, "confirmed")]
    return render(request, viewer, "confirm.html", title=f"Confirm: {label}", nav=None, label=label, names=names,
                  hidden=hidden, options=options, action_url=request.url.path,
                  back=back(request, form, default), estimate=estimate,
                  estimate_text=budget.describe(estimate, with_warning=False) if estimate else None)


def invalid_form(request: Request, form: FormData, exc: schedule.ScheduleError, page, *args,
                 default: str = "/charts") -> Response:
    """The page of a form that failed validation, rendered again (422) with what the user typed and
    the validator's message, which names the field by its label (no redirect: nothing is lost)."""
    values: dict = {k: str(v)[:200] for k, v in form.multi_items() if k != csrf.FIELD}
    values["chart_id_list"] = [str(i) for i in form_ids(form, "chart_id")]
    request.state.form_values = values
    request.state.here = back(request, form, default)
    request.state.form_error = {"field": exc.field, "label": exc.label, "text": str(exc)}
    response = page(request, *args)
    response.status_code = 422
    return response


def redirect(request: Request, target: str, messages: list[dict]) -> RedirectResponse:
    response = RedirectResponse(target, status_code=303)
    if messages:
        response.set_cookie(csrf.FLASH_COOKIE, csrf.dump_flash(messages), path=flash_path(request),
                            max_age=csrf.FLASH_MAX_AGE, httponly=True, samesite="lax",
                            secure=request.url.scheme == "https")
    return response


def message(level: str, text: str, details: list[str] | None = None, links: list[dict] | None = None) -> dict:
    """One flash message; details and links are capped so the cookie stays small.

    A link is ``{"text", "airflow"}`` (a path of the Airflow UI: a DAG, a run, its backfills) or
    ``{"text", "page"}`` (a path of these pages); the page turns it into a URL."""
    details, links = details or [], links or []
    shown = [d[:240] for d in details[:12]]
    if len(details) > len(shown):
        shown.append(f"... and {len(details) - len(shown)} more")
    return {"level": level, "text": text[:300], "details": shown, "links": links[:12]}


# -- links of a result: the Airflow UI's own routes (3.3.2: /dags/<id>, /dags/<id>/runs/<run>, /dags/<id>/backfills)
def dag_link(dag_id: str) -> dict:
    return {"text": f"DAG {dag_id}", "airflow": f"/dags/{quote(dag_id, safe='')}"}


def run_link(dag_id: str, run_id: str) -> dict:
    return {"text": f"run {run_id}", "airflow": f"/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"}


def backfill_link(dag_id: str, backfill_id: int) -> dict:
    return {"text": f"backfill {backfill_id}", "airflow": f"/dags/{quote(dag_id, safe='')}/backfills"}


def bulk_message(label: str, items: list[schedules.BulkItem], slugs: dict[int, str] | None = None,
                 estimate: Estimate | None = None) -> dict:
    """What a bulk action did, with a link to each run it created (or each DAG it changed); an add says what
    its first syncs and history cost (``estimate``, made before it), a warning below the reserve."""
    counts: dict[str, int] = {}
    links = []
    for item in items:
        counts[item.outcome] = counts.get(item.outcome, 0) + 1
        slug = (slugs or {}).get(item.chart_id)
        if item.outcome not in ("done", "unchanged") or slug is None:
            continue
        dag_id = schedule.dag_id_for(slug)
        links.append(run_link(dag_id, item.run_id) if item.run_id else dag_link(dag_id))
    ok = counts.get("done", 0) + counts.get("unchanged", 0)
    level = "success" if ok == len(items) else "error" if ok == 0 else "warning"
    summary = ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items()))
    cost = ""
    if estimate is not None and counts.get("done"):
        cost = f" Quota: {budget.describe(estimate)}."
        level = "warning" if estimate.warning and level == "success" else level
    return message(level, f"{label}: {summary}.{cost}", [item.message for item in items], links)


def heal_message(results: list[gaps.HealResult]) -> dict:
    counts: dict[str, int] = {}
    links = []
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
        if r.backfill_id is not None:
            links.append(backfill_link(r.dag_id, r.backfill_id))
        links.append(dag_link(r.dag_id))
    ok = counts.get("created", 0) + counts.get("nothing-to-heal", 0) + counts.get("already-running", 0)
    level = "success" if ok == len(results) and counts.get("created") else "warning" if ok else "error"
    if level == "success" and any(r.estimate and r.estimate.warning for r in results):
        level = "warning"
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "no schedule selected"
    return message(level, f"Heal gaps: {summary}.", [
        f"{r.dag_id}: {r.message}" + (f" (quota: {budget.describe(r.estimate)})" if r.estimate else "")
        for r in results], links)
