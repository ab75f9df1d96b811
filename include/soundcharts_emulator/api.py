"""The emulated Soundcharts endpoints, as plain functions from a request to a reply.

Paths and JSON shapes follow the public ``soundcharts`` SDK (github.com/
soundcharts/python-sdk, ``src/soundcharts/charts.py`` and ``song.py``) and
/work/shared/reference/soundcharts-api.md.  Transport, authentication and
the 429/500/slow/hang faults and the malformed body variants live in ``server``; the
``unpublished`` fault and the malformed ranking variants are applied here because they change
which rankings exist and what they list.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from urllib.parse import unquote, urlencode

from soundcharts_emulator import catalog, rankings, songs
from soundcharts_emulator.faults import FaultBook, FaultRule

MAX_LIMIT = 100
AUDIENCE_MAX_DAYS = 90
NO_RANKING = "No ranking found for this date"
_RANKING_DATE = re.compile(r"^(\d{4}-\d{2}-\d{2})(?:T00:00:00(?:[+ ]00:?00|Z)?)?$")


class ApiError(Exception):
    """An error answer: ``{"errors": [{"key", "code", "message"}]}``."""

    def __init__(self, status: int, message: str, key: str = "request") -> None:
        super().__init__(message)
        self.status, self.message, self.key = status, message, key

    def payload(self) -> dict[str, object]:
        return error_payload(self.status, self.message, self.key)


def error_payload(status: int, message: str, key: str = "request") -> dict[str, object]:
    return {"errors": [{"key": key, "code": status, "message": message}]}


@dataclass
class Request:
    path: str  # as received, still percent-encoded, without the query string
    query: dict[str, str]
    today: date
    faults: FaultBook = field(default_factory=FaultBook)


# -- paging -----------------------------------------------------------------------------


def _int_param(request: Request, name: str, default: int) -> int:
    raw = request.query.get(name, "")
    if raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ApiError(400, f"Query parameter '{name}' must be an integer") from None


def _window(request: Request) -> tuple[int, int]:
    """The validated ``offset`` and ``limit`` of a list request."""
    offset = _int_param(request, "offset", 0)
    limit = _int_param(request, "limit", MAX_LIMIT)
    if offset < 0:
        raise ApiError(400, "Query parameter 'offset' must be >= 0")
    if not 1 <= limit <= MAX_LIMIT:
        raise ApiError(400, f"Query parameter 'limit' must be between 1 and {MAX_LIMIT}")
    return offset, limit


def _paged(request: Request, items: list, extra: dict[str, object]) -> dict[str, object]:
    """``extra`` plus one page of ``items`` as ``items``/``page``/``errors``."""
    offset, limit = _window(request)
    others = {k: v for k, v in request.query.items() if k not in ("offset", "limit")}

    def link(start: int) -> str:
        return f"{request.path}?{urlencode({**others, 'offset': start, 'limit': limit})}"

    total = len(items)
    page = {
        "offset": offset,
        "limit": limit,
        "next": link(offset + limit) if offset + limit < total else None,
        "previous": link(max(0, offset - limit)) if offset > 0 else None,
        "total": total,
    }
    return {**extra, "items": items[offset : offset + limit], "page": page, "errors": []}


# -- charts -----------------------------------------------------------------------------


def platforms(request: Request) -> dict[str, object]:
    items = [{"code": code, "name": name} for code, name in catalog.PLATFORMS.items()]
    return _paged(request, items, {})


def charts_by_platform(request: Request, platform: str) -> dict[str, object]:
    if platform not in catalog.PLATFORMS:
        raise ApiError(404, f"Unknown platform '{platform}'")
    country = request.query.get("countryCode") or None
    charts = catalog.charts_for_platform(platform, country)
    return _paged(request, [chart.to_json() for chart in charts], {})


def _get_chart(slug: str) -> catalog.Chart:
    chart = catalog.get_chart(slug)
    if chart is None:
        raise ApiError(404, f"Chart '{slug}' not found")
    return chart


def _withheld(
    request: Request, rules: list[FaultRule], chart: catalog.Chart, k: int, newest: int | None
) -> bool:
    """True (firing the rule) when one of the unpublished ``rules`` hides period ``k``.

    A dated rule hides that date; a date-less one hides the newest period.
    """
    day = catalog.period_date(chart, k)
    for rule in rules:
        hits = rule.date == day if rule.date else k == newest
        if hits and request.faults.fire(rule):
            return True
    return False


def _unpublished_rules(request: Request) -> list[FaultRule]:
    return request.faults.active("unpublished", request.path)


def available_rankings(request: Request, slug: str) -> dict[str, object]:
    chart = _get_chart(slug)
    periods = catalog.published_periods(chart, request.today)
    if rules := _unpublished_rules(request):
        newest = periods[0] if periods else None
        periods = [k for k in periods if not _withheld(request, rules, chart, k, newest)]
    items = [catalog.atom(catalog.period_date(chart, k)) for k in periods]
    return _paged(request, items, {"related": {"chart": chart.to_json()}})


def parse_ranking_date(text: str) -> date:
    """ATOM datetime (``+`` raw, ``%2B`` or decoded to a space) or ``YYYY-MM-DD``."""
    match = _RANKING_DATE.match(text)
    try:
        return date.fromisoformat(match.group(1) if match else "invalid")
    except ValueError:
        raise ApiError(400, f"Invalid ranking date '{text}': use an ATOM datetime") from None


def _latest_period(request: Request, chart: catalog.Chart) -> int:
    periods = catalog.published_periods(chart, request.today)
    rules = _unpublished_rules(request)
    for rule in rules:
        if rule.date is None and request.faults.fire(rule):
            raise ApiError(404, NO_RANKING)
    for k in periods:
        if not _withheld(request, rules, chart, k, None):
            return k
    raise ApiError(404, NO_RANKING)


def ranking(request: Request, slug: str, when: str) -> dict[str, object]:
    chart = _get_chart(slug)
    offset, _ = _window(request)  # fail fast, before computing the ranking
    if when == "latest":
        k = _latest_period(request, chart)
    else:
        day = parse_ranking_date(when)
        k = catalog.period_index(chart, day)
        published = catalog.period_date(chart, k) == day and catalog.is_published(chart, k, request.today)
        newest = catalog.newest_period(chart, request.today)
        if not published or _withheld(request, _unpublished_rules(request), chart, k, newest):
            raise ApiError(404, NO_RANKING)
    entries = rankings.ranking_entries(chart.slug, k)
    if rule := request.faults.ranking_fault(request.path, urlencode(request.query), first_page=offset == 0):
        entries = rankings.corrupted(chart, entries, rule.variant)
    ranking_date = catalog.atom(catalog.period_date(chart, k))
    page = _paged(request, list(entries), {"related": {"chart": chart.to_json(), "date": ranking_date}})
    page["items"] = [rankings.entry_json(chart, k, entry) for entry in page["items"]]
    return page


# -- songs ------------------------------------------------------------------------------


def _song_key(request: Request, uuid: str) -> int:
    key = songs.key_from_uuid(uuid)
    if key is None or songs.release_day(key) > (request.today - catalog.EPOCH).days:
        raise ApiError(404, f"Song '{uuid}' not found")
    return key


def song(request: Request, uuid: str) -> dict[str, object]:
    key = _song_key(request, uuid)
    return {"type": "song", "object": songs.song_details(key), "errors": []}


def _date_param(request: Request, name: str, default: date) -> date:
    raw = request.query.get(name, "")
    try:
        return date.fromisoformat(raw) if raw else default
    except ValueError:
        raise ApiError(400, f"Query parameter '{name}' must be a date YYYY-MM-DD") from None


def audience(request: Request, uuid: str, platform: str) -> dict[str, object]:
    key = _song_key(request, uuid)
    if platform not in catalog.AUDIENCE_PLATFORMS:
        raise ApiError(404, f"Unknown platform '{platform}'")
    newest = request.today - timedelta(days=1)
    end = _date_param(request, "endDate", newest)
    start = _date_param(request, "startDate", end - timedelta(days=AUDIENCE_MAX_DAYS - 1))
    if end < start:
        raise ApiError(400, "endDate must not be before startDate")
    if (end - start).days > AUDIENCE_MAX_DAYS:
        raise ApiError(400, f"The period must not exceed {AUDIENCE_MAX_DAYS} days")
    items = []
    for offset in range((min(end, newest) - start).days + 1):
        day = start + timedelta(days=offset)
        value = songs.audience_value(key, platform, day)
        if value is not None:
            items.append({"date": catalog.atom(day), "plots": [{"identifier": platform, "value": value}]})
    related = {"related": {"song": songs.song_summary(key), "platform": platform}}
    return _paged(request, items, related)


# -- routing ----------------------------------------------------------------------------

_ROUTES: list[tuple[re.Pattern[str], Callable[..., dict[str, object]]]] = [
    (re.compile(r"/api/v2/chart/song/platforms/?"), platforms),
    (re.compile(r"/api/v2/chart/song/by-platform/([^/]+)/?"), charts_by_platform),
    (re.compile(r"/api/v2/chart/song/([^/]+)/available-rankings/?"), available_rankings),
    (re.compile(r"/api/v2\.14/chart/song/([^/]+)/ranking/([^/]+)/?"), ranking),
    (re.compile(r"/api/v2\.25/song/([^/]+)/?"), song),
    (re.compile(r"/api/v2/song/([^/]+)/audience/([^/]+)/?"), audience),
]


def handle(request: Request) -> dict[str, object]:
    """The JSON payload for a GET ``request``; raises ApiError for error answers."""
    for pattern, endpoint in _ROUTES:
        match = pattern.fullmatch(request.path)
        if match:
            return endpoint(request, *(unquote(group) for group in match.groups()))
    raise ApiError(404, f"No route for '{request.path}'")
