"""Schemathesis hooks for the chart-sync API run (SCHEMATHESIS_HOOKS=schemathesis_hooks): hostile numbers.

Schemathesis draws finite numbers only, and requests refuses to send anything else. These hooks make the
run also send what clients really send: ``NaN``, ``Infinity``, ``-Infinity`` (Python's and JavaScript's
JSON writers emit them) and ``1e999`` (valid JSON that overflows a double), in place of any number of a
drawn JSON body. The server must answer 422 with a body that is itself valid JSON, never a 5xx.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

import schemathesis
from hypothesis import strategies as st

OVERFLOW = "__chartsync_1e999__"  # stands for the literal 1e999 until the body is written
HOSTILE: tuple[Any, ...] = (math.nan, math.inf, -math.inf, OVERFLOW)


def number_paths(value: Any, path: tuple = ()) -> list[tuple]:
    """Where the numbers are in a JSON value (booleans are not numbers here)."""
    if isinstance(value, bool):
        return []
    if isinstance(value, int | float):
        return [path]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in number_paths(v, (*path, k))]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in number_paths(v, (*path, i))]
    return []


def replaced(value: Any, path: tuple, new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {**value, head: replaced(value[head], rest, new)}
    copy = list(value)
    copy[head] = replaced(copy[head], rest, new)
    return copy


@schemathesis.hook
def flatmap_body(context, body):
    paths = number_paths(body)
    if not paths:
        return st.just(body)
    hostile = st.tuples(st.sampled_from(paths), st.sampled_from(HOSTILE)).map(lambda pv: replaced(body, *pv))
    return st.one_of(st.just(body), hostile)  # half the bodies keep their drawn numbers


@schemathesis.serializer("application/json")
def json_with_non_finite_numbers(ctx, value) -> bytes:
    if isinstance(value, bytes):  # raw bytes from an example: sent as they are (as Schemathesis does)
        return value
    text = json.dumps(value, allow_nan=True, default=_as_text).replace(f'"{OVERFLOW}"', "1e999")  # NaN, Infinity as literals
    _note_sent(text)
    return text.encode()


def _as_text(value: Any) -> str:
    """Binary values nested in a body: their text, as Schemathesis' own JSON serializer sends them."""
    return value.decode("latin-1") if isinstance(value, bytes) else str(value)


SENT_LOG_ENV = "CHARTSYNC_HOSTILE_LOG"  # the test counts what was really sent


def _note_sent(text: str) -> None:
    log = os.environ.get(SENT_LOG_ENV)
    if log and any(token in text for token in ("NaN", "Infinity", "1e999")):
        with open(log, "a") as f:
            f.write(text[:300] + "\n")


@schemathesis.check
def error_body_is_json(ctx, response, case) -> None:
    """Every 4xx answer carries a body that strict JSON can read (no NaN echoed back)."""
    if 400 <= response.status_code < 500 and response.content:
        try:
            json.loads(response.content, parse_constant=_refuse)
        except ValueError as exc:
            raise AssertionError(f"{response.status_code} body is not strict JSON: {exc}") from None


def _refuse(token: str):
    raise ValueError(f"non-finite number {token} in the body")
