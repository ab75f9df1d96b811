"""HTTP side of the emulator: authentication, quota header, faults, admin API.

``start_server`` runs a ``ThreadingHTTPServer`` in a daemon thread and returns
an ``EmulatorServer`` (``.url``, ``.port``, ``.state``, ``.shutdown()``).

Every API request needs the ``x-app-id`` and ``x-api-key`` headers (401 when
missing, 403 when wrong), is counted, and every answer carries
``x-quota-remaining``.

Quota mode: the emulator starts with a quota (``--quota N``, default
``QUOTA_START`` = 1,000,000: effectively unlimited) and spends one per
authenticated API call, whatever its answer (a rate-limit 429 and a 5xx fault
too: the real API's accounting of those is unknown, this is the cautious
guess); the answer's ``x-quota-remaining`` is what is left after the call.
Once none is left, every API call is a 429 with Soundcharts' error body
(``QUOTA_EXHAUSTED_MESSAGE``, key ``quota``), ``x-quota-remaining: 0`` and no
``Retry-After``, spending nothing; the rate-limit 429 fault keeps its
``Retry-After`` / ``x-ratelimit-reset`` and its "maximum request count"
message. ``GET /api/v2/team/usage`` spends nothing: 200, ``x-quota-remaining``
and ``{"type": "usage", "object": {"quota": {"remaining": n, "consumed": n}},
"errors": []}`` (the real body's shape is unconfirmed: chart-sync's client
relies on the header only).

The test-only admin API needs no credentials and is not counted:

- ``GET|POST|DELETE /__admin/faults``: list, append (a rule or a list of
  rules, see ``faults``), clear the fault rules;
- ``GET /__admin/requests``: ``{"total": n, "by_path": {path: n},
  "faults_injected": {kind: n}}`` (every fault kind, 0 when none injected);
- ``POST /__admin/reset``: clear faults and all counters, the quota spent included:
  the quota is the starting one again (the clock and seed stay);
- ``GET|POST /__admin/quota``: read or set what is left, body ``{"remaining": n}``
  (``n >= 0``; ``null``: the starting quota); answers
  ``{"remaining": n, "start": n, "consumed": n}``;
- ``GET|POST /__admin/today``: read or move the clock, body
  ``{"today": "YYYY-MM-DD"}`` (``null`` = follow the real UTC date);
- ``GET|POST /__admin/seed``: read or set the seed of the ``rate`` decisions,
  body ``{"seed": n}``; setting it starts the decisions over (see ``faults``).

Malformed rules of a body variant break answers here; those of a ranking variant corrupt
a ranking's items in ``api.ranking``, before it is paged.

A ``hang`` fault holds its request for its delay, then drops the connection
without an answer; ``shutdown()`` releases hanging requests at once.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

from soundcharts_emulator import api
from soundcharts_emulator.faults import BODY_VARIANTS, FaultBook, FaultRule, parse_seed, to_rule

QUOTA_START = 1_000_000
USAGE_PATH = "/api/v2/team/usage"
QUOTA_EXHAUSTED_MESSAGE = "Quota exceeded: your API quota is consumed."
NO_ANSWER = 0  # the status of a reply that drops the connection without answering (hang)
Reply = tuple[int, dict[str, object] | list[object] | bytes, dict[str, str]]


def _dumps(payload: object) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


class EmulatorState:
    """What one emulator instance remembers: credentials, clock, faults, counters."""

    def __init__(
        self,
        *,
        app_id: str = "soundcharts",
        api_key: str = "soundcharts",
        today: date | None = None,
        faults: Iterable[FaultRule] = (),
        latency_ms: float = 0,
        seed: int = 0,
        quota: int = QUOTA_START,
    ) -> None:
        if quota < 0:
            raise ValueError("the quota must not be negative")
        self.app_id, self.api_key = app_id, api_key
        self.latency = latency_ms / 1000
        self.faults = FaultBook(faults, seed)
        self.today_override = today
        self.stopping = threading.Event()  # set by shutdown: ends slow and hanging waits
        self._lock = threading.Lock()
        self._by_path: Counter[str] = Counter()
        self.quota_start = quota
        self._quota = quota
        self._consumed = 0

    @property
    def today(self) -> date:
        return self.today_override or datetime.now(UTC).date()

    @property
    def quota(self) -> int:
        return self._quota

    def count(self, path: str) -> None:
        """Record one API request (every one, answered or not)."""
        with self._lock:
            self._by_path[path] += 1

    def spend(self) -> int | None:
        """Spend one call of the quota; returns what is left, or None when none was left (nothing spent)."""
        with self._lock:
            if self._quota <= 0:
                return None
            self._quota -= 1
            self._consumed += 1
            return self._quota

    def set_quota(self, remaining: int | None) -> None:
        """What is left (None: the starting quota); the calls consumed start over."""
        with self._lock:
            self._quota = self.quota_start if remaining is None else remaining
            self._consumed = 0

    def quota_json(self) -> dict[str, int]:
        with self._lock:
            return {"remaining": self._quota, "start": self.quota_start, "consumed": self._consumed}

    def requests_json(self) -> dict[str, object]:
        with self._lock:
            counts: dict[str, object] = {
                "total": sum(self._by_path.values()), "by_path": dict(sorted(self._by_path.items())),
            }
        return {**counts, "faults_injected": self.faults.injected_json()}

    def reset(self) -> None:
        self.faults.reset()
        with self._lock:
            self._by_path.clear()
        self.set_quota(None)


# -- API requests -----------------------------------------------------------------------


def _error(status: int, message: str, key: str = "request", headers: dict[str, str] | None = None) -> Reply:
    return status, api.error_payload(status, message, key), headers or {}


def _corrupt(payload: dict[str, object], variant: str) -> bytes:
    if variant == "missing_items" and "items" in payload:
        return _dumps({k: v for k, v in payload.items() if k != "items"})
    body = _dumps(payload)
    return body[: max(1, len(body) // 2)]


def api_reply(state: EmulatorState, method: str, path: str, query: str, headers: Mapping[str, str]) -> Reply:
    """Answer one API request: auth, the quota (the usage endpoint spends none), then faults, then the endpoint."""
    app_id, api_key = headers.get("x-app-id"), headers.get("x-api-key")
    if not app_id or not api_key:
        return _error(401, "Authentication required: send the x-app-id and x-api-key headers", "access")
    if (app_id, api_key) != (state.app_id, state.api_key):
        return _error(403, "Invalid credentials for x-app-id / x-api-key", "access")
    if method != "GET":
        return _error(405, f"Method {method} not allowed")
    if path.rstrip("/") == USAGE_PATH:  # free: reads the quota without spending any
        usage = state.quota_json()
        quota = {"remaining": usage["remaining"], "consumed": usage["consumed"]}
        return 200, {"type": "usage", "object": {"quota": quota}, "errors": []}, {}
    if state.spend() is None:
        return _error(429, QUOTA_EXHAUSTED_MESSAGE, "quota")

    if rule := state.faults.take("hang", path, query):
        state.stopping.wait(rule.delay)
        return NO_ANSWER, b"", {}
    if rule := state.faults.take("slow", path, query):
        state.stopping.wait(rule.delay)
    if rule := state.faults.take("429", path, query):
        wait = str(rule.retry_after)
        message = f"Too many requests: maximum request count reached, retry in {wait} s"
        return _error(429, message, "quota", {"Retry-After": wait, "x-ratelimit-reset": wait})
    if state.faults.take("500", path, query):
        return _error(500, "Internal server error (emulated fault)", "server")

    params = {name: values[0] for name, values in parse_qs(query, keep_blank_values=True).items()}
    request = api.Request(path, params, state.today, state.faults)
    try:
        payload = api.handle(request)
    except api.ApiError as exc:
        return exc.status, exc.payload(), {}
    if rule := state.faults.take("malformed", path, query, BODY_VARIANTS):  # ranking variants: api.ranking
        return 200, _corrupt(payload, rule.variant), {}
    return 200, payload, {}


# -- admin requests ---------------------------------------------------------------------


def admin_reply(state: EmulatorState, method: str, path: str, body: bytes) -> Reply:
    route = (method, path.rstrip("/"))
    try:
        data = json.loads(body) if body.strip() else None
    except ValueError:
        return _error(400, "Request body is not valid JSON")
    if route == ("GET", "/__admin/faults"):
        return 200, {"faults": state.faults.to_json()}, {}
    if route == ("POST", "/__admin/faults"):
        try:
            rules = [to_rule(item) for item in (data if isinstance(data, list) else [data or {}])]
        except (ValueError, TypeError) as exc:
            return _error(400, str(exc))
        for rule in rules:
            state.faults.add(rule)
        return 201, {"faults": state.faults.to_json()}, {}
    if route == ("DELETE", "/__admin/faults"):
        state.faults.clear()
        return 200, {"faults": []}, {}
    if route == ("GET", "/__admin/requests"):
        return 200, state.requests_json(), {}
    if route == ("POST", "/__admin/reset"):
        state.reset()
        return 200, {"faults": [], **state.requests_json()}, {}
    if route == ("POST", "/__admin/seed"):
        try:
            if not isinstance(data, dict) or "seed" not in data:
                raise ValueError("no seed")
            state.faults.reseed(parse_seed(data["seed"]))
        except ValueError:
            return _error(400, 'Body must be {"seed": n} with an integer n')
    if route in {("GET", "/__admin/seed"), ("POST", "/__admin/seed")}:
        return 200, {"seed": state.faults.seed}, {}
    if route == ("POST", "/__admin/today"):
        raw = (data or {}).get("today") if isinstance(data, dict) else None
        try:
            state.today_override = date.fromisoformat(raw) if raw else None
        except (TypeError, ValueError):
            return _error(400, 'Body must be {"today": "YYYY-MM-DD"} or {"today": null}')
    if route == ("POST", "/__admin/quota"):
        raw = data.get("remaining", "missing") if isinstance(data, dict) else "missing"
        if raw is not None and (isinstance(raw, bool) or not isinstance(raw, int) or raw < 0):
            return _error(400, 'Body must be {"remaining": n} with an integer n >= 0, or {"remaining": null}')
        state.set_quota(raw)
    if route in {("GET", "/__admin/quota"), ("POST", "/__admin/quota")}:
        return 200, state.quota_json(), {}
    if route in {("GET", "/__admin/today"), ("POST", "/__admin/today")}:
        return 200, {"today": state.today.isoformat(), "overridden": state.today_override is not None}, {}
    return _error(404, f"No admin route {method} {path}")


# -- transport --------------------------------------------------------------------------


class _HTTPServer(ThreadingHTTPServer):
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], state: EmulatorState, log_requests: bool) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.state = state
        self.log_requests = log_requests
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: clients reuse connections
    disable_nagle_algorithm = True  # else headers and body wait on delayed ACKs (~40 ms)
    server_version = "soundcharts-emulator/1"
    server: _HTTPServer

    def do_GET(self) -> None:  # noqa: N802 (http.server naming)
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    def do_DELETE(self) -> None:  # noqa: N802
        self._dispatch("DELETE")

    def do_PUT(self) -> None:  # noqa: N802
        self._dispatch("PUT")

    def _dispatch(self, method: str) -> None:
        state = self.server.state
        path, _, query = self.path.partition("?")
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if path == "/__admin" or path.startswith("/__admin/"):
            reply = admin_reply(state, method, path, body)
        else:
            state.count(path)
            if state.latency:
                time.sleep(state.latency)
            headers = {name.lower(): value for name, value in self.headers.items()}
            reply = api_reply(state, method, path, query, headers)
        quota = state.quota  # after the call: what it left
        status, payload, headers = reply
        if status == NO_ANSWER:  # a hang: the connection closes without a byte sent
            self.close_connection = True
            return
        data = payload if isinstance(payload, bytes) else _dumps(payload)
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("x-quota-remaining", str(quota))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        if self.server.log_requests:
            super().log_message(format, *args)


class EmulatorServer:
    """A running emulator; stop it with ``shutdown()`` (or use it as a context manager)."""

    def __init__(self, httpd: _HTTPServer, host: str) -> None:
        self._httpd = httpd
        self.host = host
        self.port: int = httpd.server_address[1]
        self.state = httpd.state
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
            name=f"soundcharts-emulator-{self.port}", daemon=True,
        )
        self._thread.start()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def wait(self) -> None:
        """Block until the server stops (wakes up regularly so signals get through)."""
        while self._thread.is_alive():
            self._thread.join(0.5)

    def shutdown(self) -> None:
        self.state.stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)

    def __enter__(self) -> EmulatorServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()


def start_server(
    host: str = "127.0.0.1",
    port: int = 0,
    today: date | str | None = None,
    faults: Iterable[FaultRule | Mapping[str, object] | str] | None = None,
    *,
    app_id: str = "soundcharts",
    api_key: str = "soundcharts",
    latency_ms: float = 0,
    log_requests: bool = False,
    seed: int = 0,
    quota: int = QUOTA_START,
) -> EmulatorServer:
    """Start an emulator in a daemon thread; ``port=0`` picks a free port.

    ``today`` fixes the clock (default: the real UTC date); ``faults`` are
    rules, their JSON dicts or their command-line strings; ``seed`` seeds the
    decisions of rules with a ``rate``; ``quota`` is the starting quota (see quota mode above).
    """
    if isinstance(today, str):
        today = date.fromisoformat(today)
    rules = [to_rule(rule) for rule in faults or ()]
    state = EmulatorState(app_id=app_id, api_key=api_key, today=today, faults=rules, latency_ms=latency_ms,
                          seed=seed, quota=quota)
    return EmulatorServer(_HTTPServer((host, port), state, log_requests), host)
