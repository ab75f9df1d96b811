"""The one error table: which domain exception answers with which HTTP status, through either door.

``create_app`` installs it once for the whole app. The REST API answers in JSON, ``{"detail":
message}`` (invalid schedule input: the field-error shape of FastAPI's own 422s); the pages answer
with the same status on the HTML error page, headed by the table's title. Refusals that only the
pages make (no access, a refused form) are ``PageError``. A request the door refuses (``door``: a
control character, a body too large) and one the schemas refuse answer here too, in a reply that
echoes at most a few hundred characters of the input.
"""

from __future__ import annotations

import math

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chartsync.seam import orchestration
from chartsync.services import audience
from chartsync.services import schedules
from chartsync.services.charts import ChartNotFound
from chartsync.store import ranking_pages as rankings
from chartsync.store.engine import ChartDbConfigError
from fastapi import status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from chart_sync_admin.door import Refusal


@dataclass(frozen=True)
class ErrorAnswer:
    status: int
    title: str  # the HTML error page's heading
    body: Callable[[Any], dict[str, Any]] | None = None  # the JSON body, when not {"detail": message}


def _field_error(exc: schedules.ScheduleError) -> dict[str, Any]:
    return {"detail": [{"loc": ["body", exc.field], "msg": str(exc), "type": "value_error"}]}


ERRORS: dict[type[Exception], ErrorAnswer] = {
    ChartNotFound: ErrorAnswer(status.HTTP_404_NOT_FOUND, "No such chart"),
    schedules.ScheduleNotFound: ErrorAnswer(status.HTTP_404_NOT_FOUND, "No such schedule"),
    rankings.RankingNotFound: ErrorAnswer(status.HTTP_404_NOT_FOUND, "No ranking"),
    audience.TrackNotFound: ErrorAnswer(status.HTTP_404_NOT_FOUND, "No such song"),
    schedules.DuplicateSchedule: ErrorAnswer(status.HTTP_409_CONFLICT, "Already scheduled"),
    schedules.ScheduleError: ErrorAnswer(status.HTTP_422_UNPROCESSABLE_CONTENT, "Invalid schedule settings",
                                         _field_error),
    orchestration.DagNotParsedYet: ErrorAnswer(status.HTTP_409_CONFLICT, "DAG not parsed yet"),
    orchestration.RunAlreadyExists: ErrorAnswer(status.HTTP_409_CONFLICT, "Run already exists"),
    orchestration.BackfillAlreadyRunning: ErrorAnswer(status.HTTP_409_CONFLICT, "Backfill already running"),
    ChartDbConfigError: ErrorAnswer(status.HTTP_503_SERVICE_UNAVAILABLE, "Chart DB unavailable"),
}


def answer_for(exc: Exception) -> ErrorAnswer:
    """The table's entry for the exception's own class, else for its nearest listed base class."""
    return next(ERRORS[cls] for cls in type(exc).__mro__ if cls in ERRORS)


def json_response(exc: Exception) -> JSONResponse:
    """The REST API's answer to a domain exception."""
    answer = answer_for(exc)
    if answer.body is not None:
        return JSONResponse(answer.body(exc), status_code=answer.status)
    message = exc.message if isinstance(exc, schedules.ScheduleError) else str(exc)
    return JSONResponse({"detail": message}, status_code=answer.status)


ECHO_TEXT = 200  # characters of an input string a 422 echoes back
ECHO_ITEMS = 20  # items of an input list or object
ECHO_DEPTH = 4  # levels of nesting (JSON may nest a thousand deep: too deep for jsonable_encoder)
MESSAGE_TEXT = 1000  # characters of a message (one may quote the input)


def _echoed(value: Any, depth: int = 0) -> Any:
    """An input as a 422 echoes it: JSON can carry it (NaN, Infinity become text, a lone surrogate '?'),
    and megabytes sent come back as a few hundred characters."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str):
        text = value.encode("utf-8", "replace").decode("utf-8")
        return text if len(text) <= ECHO_TEXT else f"{text[:ECHO_TEXT]}... ({len(text)} characters)"
    if isinstance(value, (dict, list, tuple)) and depth >= ECHO_DEPTH:
        return "..."
    if isinstance(value, dict):
        shown = {_echoed(str(k)): _echoed(v, depth + 1) for k, v in list(value.items())[:ECHO_ITEMS]}
        if len(value) > ECHO_ITEMS:
            shown["..."] = f"{len(value) - ECHO_ITEMS} more"
        return shown
    if isinstance(value, (list, tuple)):
        more = [f"... {len(value) - ECHO_ITEMS} more"] if len(value) > ECHO_ITEMS else []
        return [_echoed(v, depth + 1) for v in value[:ECHO_ITEMS]] + more
    return value


def invalid_request(_request: Any, exc: RequestValidationError) -> JSONResponse:
    """FastAPI's 422 for a request the schemas refuse, with a body that always encodes (FastAPI's own
    echoes a NaN or 1e999 input back and fails to encode it: a 500) and stays small."""
    detail = [{**error, "msg": str(error.get("msg", ""))[:MESSAGE_TEXT],
               **{key: _echoed(error[key]) for key in ("input", "ctx") if key in error}} for error in exc.errors()]
    return JSONResponse({"detail": jsonable_encoder(detail)}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)


def refusal_response(refusal: Refusal) -> JSONResponse:
    """The REST API's answer to a request the door refuses: a 422 in the field-error shape, else the message."""
    if refusal.loc:
        return JSONResponse({"detail": [{"loc": list(refusal.loc), "msg": refusal.message, "type": "value_error"}]},
                            status_code=refusal.status)
    return JSONResponse({"detail": refusal.message}, status_code=refusal.status)


class PageError(Exception):
    """A page's error answer: the HTML error page with this status, title and message."""

    def __init__(self, status: int, title: str, message: str) -> None:
        super().__init__(message)
        self.status, self.title, self.message = status, title, message


def page_error(exc: Exception) -> PageError:
    """A domain exception as the pages answer it: the table's status and title, the exception's text."""
    answer = answer_for(exc)
    return PageError(answer.status, answer.title, str(exc))
