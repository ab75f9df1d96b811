"""What a request must be before any route, access check or database sees it: the plugin's door.

``Door`` (an ASGI middleware around the whole app, the REST API and the pages) refuses
- a URL over ``MAX_URL_BYTES`` (414), a body over ``MAX_BODY_BYTES`` (413: by its Content-Length,
  else while it streams in), a multipart body (415: the pages' forms are url-encoded, the API takes JSON);
- a control character (C0, DEL, C1) or a lone surrogate: in the path (404: nothing is named so), in a
  query parameter or in a field of a form or JSON body (422 naming the parameter or field). PostgreSQL
  refuses NUL in text, Airflow's own access check queries the DAG id of a path, and a header built from
  input must not carry one; no name or value of ours needs one.
Whole numbers are written one way (``whole_number``): ASCII digits, no sign, space or leading zero, so
``1.0``, ``01``, ``+1``, ``1_0``, ``²`` and ``١`` name no id; ``PathId`` is an id in a route's path.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi import Path, Request
from fastapi.responses import Response
from pydantic import BeforeValidator
from pydantic_core import PydanticCustomError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_BODY_BYTES = 1024 * 1024  # 1 MiB: a bulk request of 500 charts with options is under 20 KiB
MAX_URL_BYTES = 8 * 1024  # path and query string together
MAX_ID = 2**31 - 1  # an INTEGER column's range on every dialect
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
NO_CONTROL_PATTERN = "^[^\x00-\x1f\x7f-\x9f]*$"  # the rule as an OpenAPI pattern, for the spec's text fields
_WHOLE_NUMBER = re.compile("0|[1-9][0-9]*")


def whole_number(text: str) -> int | None:
    """The value of a whole number written in plain ASCII digits (at most 18: no id, page or count here
    is longer), else None."""
    return int(text) if len(text) <= 18 and _WHOLE_NUMBER.fullmatch(text) else None


def _digits_only(value: Any) -> Any:
    if isinstance(value, str) and not _WHOLE_NUMBER.fullmatch(value):
        raise PydanticCustomError("int_digits", "Input should be a whole number in plain digits (0-9), "
                                                "without sign, spaces or leading zeros")
    return value


DIGITS = BeforeValidator(_digits_only)  # a path or query integer: plain digits only, before pydantic's lax parse
PathId = Annotated[int, Path(ge=1, le=MAX_ID), DIGITS]


@dataclass(frozen=True)
class Refusal:
    """A request the door turns away: its status, a title for the pages, a message, where (``loc``) for 422s."""

    status: int
    title: str
    message: str
    loc: tuple[str, ...] = ()


def _shown(name: str) -> str:
    """A parameter or field name as a message can show it."""
    return CONTROL.sub("\N{REPLACEMENT CHARACTER}", name)[:60]


def _control_in_form(items: list[tuple[str, str]], where: str) -> Refusal | None:
    for name, value in items:
        if CONTROL.search(name) or CONTROL.search(value):
            return Refusal(422, "Invalid request", f"{where} {_shown(name)!r} holds a control character",
                           (where, _shown(name)))
    return None


def _control_in_json(value: Any) -> Refusal | None:
    """The first key or string of a JSON value with a control character (iterative: nesting is unbounded)."""
    stack: list[tuple[Any, tuple[str, ...]]] = [(value, ())]
    while stack:
        item, loc = stack.pop()
        if isinstance(item, str) and CONTROL.search(item):
            return Refusal(422, "Invalid request", "a control character in a text field", ("body", *loc))
        if isinstance(item, dict):
            for key, child in item.items():
                if CONTROL.search(key):
                    return Refusal(422, "Invalid request", "a control character in a field name", ("body", _shown(key)))
                stack.append((child, (*loc, key)))
        elif isinstance(item, list):
            stack.extend((child, (*loc, str(i))) for i, child in enumerate(item))
    return None


def _refusal_of_head(scope: Scope) -> Refusal | None:
    path, query = scope["path"], scope.get("query_string", b"")
    if len(scope.get("raw_path") or path.encode()) + len(query) > MAX_URL_BYTES:
        return Refusal(414, "Address too long", f"the path and query may hold at most {MAX_URL_BYTES} bytes")
    if CONTROL.search(path):
        return Refusal(404, "No such page", "no page or resource has a control character in its address")
    refusal = _control_in_form(parse_qsl(query.decode("latin-1"), keep_blank_values=True), "query")
    if refusal is not None:
        return refusal
    length = dict(scope["headers"]).get(b"content-length", b"")  # the server has checked it is a number
    return _too_large() if length.isdigit() and int(length) > MAX_BODY_BYTES else None


def _too_large() -> Refusal:
    return Refusal(413, "Request too large", f"a request body may hold at most {MAX_BODY_BYTES} bytes (1 MiB)")


def _refusal_of_body(content_type: str, body: bytes) -> Refusal | None:
    kind = content_type.split(";")[0].strip()
    if kind == "application/x-www-form-urlencoded":
        return _control_in_form(parse_qsl(body.decode("latin-1"), keep_blank_values=True), "body")
    if kind.startswith("multipart/"):
        return Refusal(415, "Unsupported form", "send forms url-encoded and API requests as JSON")
    if not kind or kind == "application/json" or kind.endswith("+json"):  # as FastAPI reads JSON
        try:  # FastAPI's own reading answers a body that is not JSON
            value = json.loads(body)
        except (ValueError, RecursionError):
            return None
        return _control_in_json(value)
    return None  # read as neither: FastAPI refuses it as a body of the wrong kind


class Door:
    """The checks above, around the app; ``answer`` turns a refusal into the door's response (HTML or JSON)."""

    def __init__(self, app: ASGIApp, answer: Callable[[Request, Refusal], Response]) -> None:
        self.app, self.answer = app, answer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = _refusal_of_head(scope)
        if refusal is None:
            body, refusal = await _read_body(receive)
            if body is None:
                return  # the client left before its body was in: no one to answer
            if refusal is None and body:
                content_type = dict(scope["headers"]).get(b"content-type", b"").decode("latin-1").lower()
                refusal = _refusal_of_body(content_type, body)
            if refusal is None:
                await self.app(scope, _replay(body, receive), send)
                return
        # the rest of an unread body is read and dropped by the server, which keeps the connection
        await self.answer(Request(scope), refusal)(scope, receive, send)


async def _read_body(receive: Receive) -> tuple[bytes | None, Refusal | None]:
    """The whole body (None: the client left first), or the refusal of one over the cap."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None, None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:  # a chunked body declares no length
            return b"", _too_large()
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), None


def _replay(body: bytes, receive: Receive) -> Callable[[], Awaitable[Message]]:
    """The app's ``receive``: the body read by the door, then the server's own (a disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
