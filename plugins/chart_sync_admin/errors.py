"""The one error table: which domain exception answers with which HTTP status, through either door.

``create_app`` installs it once for the whole app. The REST API answers in JSON, ``{"detail":
message}`` (invalid schedule input: the field-error shape of FastAPI's own 422s); the pages answer
with the same status on the HTML error page, headed by the table's title. Refusals that only the
pages make (no access, a refused form) are ``PageError``.
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
from chartsync.store import rankings
from chartsync.store.engine import ChartDbConfigError
from fastapi import status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse


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


def _encodable(value: Any) -> Any:
    """An echoed input as JSON can carry it: NaN, Infinity and other non-finite numbers become text."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _encodable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encodable(v) for v in value]
    return value


def invalid_request(_request: Any, exc: RequestValidationError) -> JSONResponse:
    """FastAPI's 422 for a request the schemas refuse, with a body that always encodes (FastAPI's own
    echoes a NaN or 1e999 input back and fails to encode it: a 500)."""
    return JSONResponse({"detail": _encodable(jsonable_encoder(exc.errors()))},
                        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)


class PageError(Exception):
    """A page's error answer: the HTML error page with this status, title and message."""

    def __init__(self, status: int, title: str, message: str) -> None:
        super().__init__(message)
        self.status, self.title, self.message = status, title, message


def page_error(exc: Exception) -> PageError:
    """A domain exception as the pages answer it: the table's status and title, the exception's text."""
    answer = answer_for(exc)
    return PageError(answer.status, answer.title, str(exc))
