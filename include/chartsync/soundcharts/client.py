"""Soundcharts API client on the Soundcharts hook (the http provider's ``HttpHook``).

The client owns paging, retries of rate limits and server errors, and maps every failure to one
of the exceptions in ``soundcharts.errors``. A 429 of the quota (``core.quota.is_quota_exhausted``)
is raised at once as ``SoundchartsQuotaExhausted``; a rate-limit 429 is waited out. ``quota`` holds
the last ``x-quota-remaining`` any response carried; ``usage()`` reads it without spending any. It logs paths and statuses, never headers: the key
stays out of the logs (Airflow also masks the connection password).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import quote

import requests

from chartsync.core.quota import QuotaReading, is_quota_exhausted, parse_remaining
from chartsync.seam import metrics
from chartsync.settings import SOUNDCHARTS_CONN_ID
from chartsync.soundcharts.errors import (
    SoundchartsAuthError,
    SoundchartsError,
    SoundchartsMalformedResponse,
    SoundchartsNotFound,
    SoundchartsQuotaExhausted,
    SoundchartsRateLimited,
    SoundchartsServerError,
)
from chartsync.soundcharts.hook import SoundchartsHook
from chartsync.soundcharts.models import (
    AudiencePoint,
    ChartInfo,
    Ranking,
    RankingEntry,
    SongMetadata,
    atom_for,
    chart_info,
    parse_atom,
    ranking_entry,
)

log = logging.getLogger(__name__)

PAGE_LIMIT = 100
# the endpoint families the metrics name (chartsync.soundcharts.requests / retries)
CHARTS, AVAILABLE, RANKING, SONG, AUDIENCE, USAGE = (
    "charts", "available_rankings", "ranking", "song", "audience", "usage")
USAGE_PATH = "/api/v2/team/usage"
NO_RESPONSE = "error"  # the status of an attempt that got no response (timeout, connection refused)
MAX_RETRY_AFTER = 60.0  # longer waits fail the try; Airflow's retry (with backoff) takes over

__all__ = [  # what callers take from the client module: the client, its errors and its values
    "AudiencePoint", "ChartInfo", "Ranking", "RankingEntry", "SongMetadata", "SoundchartsAuthError",
    "SoundchartsClient", "SoundchartsError", "SoundchartsMalformedResponse", "SoundchartsNotFound",
    "SoundchartsQuotaExhausted", "SoundchartsRateLimited", "SoundchartsServerError", "atom_for", "parse_atom",
]


@dataclass
class SoundchartsClient:
    """Typed access to the endpoints chart-sync uses. One HTTP session per client."""

    conn_id: str = SOUNDCHARTS_CONN_ID
    timeout: float = 30.0
    max_attempts: int = 4
    request_count: int = 0
    quota: QuotaReading | None = None  # the last x-quota-remaining seen on any response, and when
    _session: requests.Session | None = field(default=None, repr=False)
    _base_url: str = field(default="", repr=False)

    # -- endpoints -----------------------------------------------------------------------------
    def charts_by_platform(self, platform: str, country_code: str | None = None) -> list[ChartInfo]:
        params = {"countryCode": country_code} if country_code else {}
        items = self._all_items(CHARTS, f"/api/v2/chart/song/by-platform/{quote(platform)}", params)
        return [chart_info(item) for item in items]

    def available_rankings(self, slug: str, newest_only: bool = False) -> list[str]:
        """ATOM dates the API has published for the chart, newest first."""
        path = f"/api/v2/chart/song/{quote(slug)}/available-rankings"
        items = self._page(AVAILABLE, path, {})["items"] if newest_only else self._all_items(AVAILABLE, path, {})
        if not all(isinstance(item, str) for item in items):
            raise SoundchartsMalformedResponse(f"{path}: items must be date strings")
        return items

    def ranking(self, slug: str, ranking_date: str | None = None) -> Ranking:
        """Every page of the ranking for an ATOM date (``None``: the latest one)."""
        when = "latest" if ranking_date is None else quote(ranking_date, safe="")
        path = f"/api/v2.14/chart/song/{quote(slug)}/ranking/{when}"
        first = self._page(RANKING, path, {})
        related = first.get("related")
        if not isinstance(related, dict) or not isinstance(related.get("date"), str):
            raise SoundchartsMalformedResponse(f"{path}: 'related.date' missing")
        items = list(first["items"]) + self._rest_items(RANKING, path, {}, first)
        # a ranking's own rules (unique positions and songs, positions in range) are core.quality's hard checks
        entries = [ranking_entry(item, path) for item in items]
        return Ranking(slug=slug, ranking_date=related["date"], entries=entries)

    def song(self, uuid: str) -> SongMetadata:
        body = self._get(SONG, f"/api/v2.25/song/{quote(uuid)}", {})
        obj = body.get("object")
        if not isinstance(obj, dict) or not obj.get("uuid") or not obj.get("name"):
            raise SoundchartsMalformedResponse(f"song {uuid}: 'object' with uuid and name missing")
        isrc = obj.get("isrc")
        release = obj.get("releaseDate")
        return SongMetadata(
            uuid=obj["uuid"],
            name=obj["name"],
            credit_name=obj.get("creditName"),
            isrc=isrc.get("value") if isinstance(isrc, dict) else isrc,
            artists=[{"uuid": a.get("uuid"), "name": a.get("name")} for a in obj.get("artists") or []],
            release_date=parse_atom(release).date() if release else None,
            duration_seconds=obj.get("duration"),
            explicit=obj.get("explicit"),
            genres=obj.get("genres") or [],
            labels=obj.get("labels") or [],
            language_code=obj.get("languageCode"),
        )

    def audience(self, uuid: str, platform: str, start: date, end: date) -> list[AudiencePoint]:
        path = f"/api/v2/song/{quote(uuid)}/audience/{quote(platform)}"
        items = self._all_items(AUDIENCE, path, {"startDate": start.isoformat(), "endDate": end.isoformat()})
        points = []
        for item in items:
            try:
                plots = item.get("plots") or []
                value = plots[0].get("value") if plots else None
                points.append(AudiencePoint(parse_atom(item["date"]).date(), value))
            except (AttributeError, KeyError, TypeError) as exc:
                raise SoundchartsMalformedResponse(f"{path}: bad audience item {item!r}") from exc
        return points

    def usage(self) -> QuotaReading:
        """The quota left, from the usage endpoint (it spends none). Only its ``x-quota-remaining`` header is
        relied on (the body's shape is unconfirmed): the body is kept as ``details``."""
        response = self._response(USAGE, USAGE_PATH, {})
        try:
            body = response.json()
        except ValueError:
            body = None
        reading = QuotaReading(parse_remaining(response.headers), datetime.now(UTC),
                               body if isinstance(body, dict) else {})
        if reading.remaining is not None:
            self.quota = reading  # the same reading _response kept, with the body
        return reading

    # -- paging --------------------------------------------------------------------------------
    def _all_items(self, endpoint: str, path: str, params: dict[str, str]) -> list[Any]:
        first = self._page(endpoint, path, params)
        return list(first["items"]) + self._rest_items(endpoint, path, params, first)

    def _rest_items(self, endpoint: str, path: str, params: dict[str, str], first: dict[str, Any]) -> list[Any]:
        """Follow ``page.total`` with explicit offsets (robust to ``next`` links we do not control)."""
        page = first.get("page") or {}
        total = page.get("total")
        if not isinstance(total, int):
            return []
        items: list[Any] = []
        offset = len(first["items"])
        while offset < total:
            body = self._page(endpoint, path, {**params, "offset": str(offset)})
            if not body["items"]:
                raise SoundchartsMalformedResponse(f"{path}: page at offset {offset} is empty, total {total}")
            items.extend(body["items"])
            offset += len(body["items"])
        return items

    def _page(self, endpoint: str, path: str, params: dict[str, str]) -> dict[str, Any]:
        body = self._get(endpoint, path, {**params, "limit": str(PAGE_LIMIT)})
        if not isinstance(body.get("items"), list):
            raise SoundchartsMalformedResponse(f"{path}: 'items' list missing")
        return body

    # -- transport -----------------------------------------------------------------------------
    def _connect(self) -> requests.Session:
        if self._session is None:
            hook = SoundchartsHook(method="GET", http_conn_id=self.conn_id)
            conn = hook.get_connection(self.conn_id)
            session = hook.get_conn()
            session.auth = None  # Soundcharts wants headers, not basic auth
            session.headers.update({"x-app-id": conn.login or "", "x-api-key": conn.password or ""})
            session.headers["Accept"] = "application/json"
            self._base_url = hook.base_url.rstrip("/")
            self._session = session
        return self._session

    def _get(self, endpoint: str, path: str, params: dict[str, str]) -> dict[str, Any]:
        """One GET with its retries, its body as a JSON object; ``endpoint`` names the endpoint family in the
        metrics."""
        response = self._response(endpoint, path, params)
        try:
            body = response.json()
        except ValueError as exc:
            raise SoundchartsMalformedResponse(f"GET {path}: body is not JSON") from exc
        if not isinstance(body, dict):
            raise SoundchartsMalformedResponse(f"GET {path}: body is not a JSON object")
        return body

    def _response(self, endpoint: str, path: str, params: dict[str, str]) -> requests.Response:
        """One GET with its retries: a 2xx/3xx response, or the failure raised."""
        session = self._connect()
        url = self._base_url + path
        for attempt in range(1, self.max_attempts + 1):
            self.request_count += 1
            try:
                response = session.get(url, params=params, timeout=self.timeout)
            except requests.RequestException as exc:
                metrics.incr(metrics.API_REQUESTS, endpoint=endpoint, status=NO_RESPONSE)
                if attempt == self.max_attempts:
                    raise SoundchartsServerError(f"GET {path}: {type(exc).__name__}") from exc
                self._pause(endpoint, path, 2 ** (attempt - 1), f"{type(exc).__name__}", NO_RESPONSE)
                continue
            status = response.status_code
            metrics.incr(metrics.API_REQUESTS, endpoint=endpoint, status=status)
            self._read_quota(response)
            if status == 429:
                if is_quota_exhausted(status, response.headers, _json_or_none(response)):
                    remaining = parse_remaining(response.headers)
                    raise SoundchartsQuotaExhausted(
                        f"GET {path}: 429 the Soundcharts API quota is consumed ({_error_message(response)}); "
                        "buy more or wait for the plan's renewal", remaining)
                retry_after = _retry_after(response)
                if attempt < self.max_attempts and retry_after is not None and retry_after <= MAX_RETRY_AFTER:
                    self._pause(endpoint, path, retry_after, "429 rate limited", status)
                    continue
                raise SoundchartsRateLimited(f"GET {path}: 429 rate limited (retry after {retry_after}s)", retry_after)
            if status >= 500:
                if attempt < self.max_attempts:
                    self._pause(endpoint, path, 2 ** (attempt - 1), f"{status} server error", status)
                    continue
                raise SoundchartsServerError(f"GET {path}: {status} after {attempt} attempts")
            if status in (401, 403):
                raise SoundchartsAuthError(f"GET {path}: {status} {_error_message(response)} (check {self.conn_id})")
            if status == 404:
                raise SoundchartsNotFound(f"GET {path}: 404 {_error_message(response)}")
            if status >= 400:
                raise SoundchartsError(f"GET {path}: {status} {_error_message(response)}")
            return response
        raise AssertionError("unreachable")

    def _read_quota(self, response: requests.Response) -> None:
        """Keep the quota a response carries (errors too) and set the gauge."""
        remaining = parse_remaining(response.headers)
        if remaining is None:
            return
        self.quota = QuotaReading(remaining, datetime.now(UTC), {})
        metrics.gauge(metrics.QUOTA_REMAINING, remaining)

    @staticmethod
    def _pause(endpoint: str, path: str, seconds: float, why: str, status: int | str) -> None:
        metrics.incr(metrics.API_RETRIES, endpoint=endpoint, status=status)
        log.warning("Soundcharts GET %s: %s, retrying in %.1fs", path, why, seconds)
        time.sleep(seconds)


def _retry_after(response: requests.Response) -> float | None:
    for header in ("Retry-After", "x-ratelimit-reset"):
        value = response.headers.get(header)
        if value:
            try:
                return float(value) + (1.0 if header == "x-ratelimit-reset" else 0.0)
            except ValueError:
                continue
    return None


def _json_or_none(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _error_message(response: requests.Response) -> str:
    try:
        errors = response.json().get("errors") or []
        return "; ".join(str(e.get("message")) for e in errors) or response.reason
    except (ValueError, AttributeError):
        return response.reason or ""
