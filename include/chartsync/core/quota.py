"""The Soundcharts API quota as plain values: a reading, the quota-429 rule, call estimates, burn rate.

Soundcharts sells API access by quota: every response carries ``x-quota-remaining`` (what is left
after the call) and ``GET /api/v2/team/usage`` reads it without spending any. A 429 is either the
quota consumed (no point retrying) or the rate limit (wait and retry): ``is_quota_exhausted`` tells
them apart, once, for the client. Pure: no database, no HTTP.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from chartsync.settings import QUOTA_RESERVE_ENV

QUOTA_HEADER = "x-quota-remaining"
PAGE_LIMIT = 100  # entries per ranking page (the API's maximum ``limit``)
UNKNOWN_SIZE_PAGES = 2  # a chart of unknown size: 200 entries, the common size of the big charts
BURN_WINDOW_DAYS = 30
# words of a rate-limit 429 (the SDK waits on "maximum request count"): never the quota, even with key "quota"
_RATE_LIMIT_WORDS = ("maximum request count", "rate limit", "too many requests")


@dataclass(frozen=True)
class QuotaReading:
    """What one response (or the usage endpoint) said of the quota, and when (UTC)."""

    remaining: int | None
    seen_at: datetime
    details: dict = field(default_factory=dict)


def parse_remaining(headers: Mapping[str, str]) -> int | None:
    """The ``x-quota-remaining`` header as a number (any case of the name), or None when absent or garbled."""
    for name, value in headers.items():
        if name.lower() == QUOTA_HEADER:
            try:
                return max(0, int(str(value).strip()))
            except ValueError:
                return None
    return None


def is_quota_exhausted(status: int, headers: Mapping[str, str], body: Any) -> bool:
    """A 429 that means the quota is consumed, not the rate limit.

    In order: ``x-quota-remaining: 0`` says quota; a ``Retry-After`` / ``x-ratelimit-reset`` header or a
    message of the rate limit ("maximum request count", which Soundcharts sends with the key ``quota``)
    says rate limit; otherwise an error whose message or key names the quota says quota.
    """
    if status != 429:
        return False
    if parse_remaining(headers) == 0:
        return True
    names = {name.lower() for name in headers}
    if names & {"retry-after", "x-ratelimit-reset"}:
        return False
    errors = body.get("errors") if isinstance(body, dict) else None
    texts = [(str(e.get("key") or "").lower(), str(e.get("message") or "").lower())
             for e in errors or () if isinstance(e, dict)]
    if any(word in message for _, message in texts for word in _RATE_LIMIT_WORDS):
        return False
    return any("quota" in key or "quota" in message for key, message in texts)


# -- estimates -------------------------------------------------------------------------------------------------
def pages_per_period(chart_size: int | None) -> int:
    """Ranking pages (API calls) one period of a chart costs: ceil(size / 100); unknown size: 2 (200 entries)."""
    if not chart_size or chart_size <= 0:
        return UNKNOWN_SIZE_PAGES
    return math.ceil(chart_size / PAGE_LIMIT)


def estimate_calls(periods: int, chart_size: int | None, *, available_rankings_calls: int = 0) -> int:
    """Calls a sync of ``periods`` periods costs: periods x pages per period.

    The available-rankings listing is not counted by default: a sync reads it only when a period turns
    out unpublished (and the gap audit once a day for every chart). A caller that will list it first
    passes ``available_rankings_calls`` (its pages: one per 100 published dates).
    """
    return max(0, periods) * pages_per_period(chart_size) + max(0, available_rankings_calls)


def below_reserve(remaining: int | None, reserve: int) -> bool:
    """The quota left is under the reserve; an unknown quota (None) is not."""
    return remaining is not None and remaining < reserve


@dataclass(frozen=True)
class Estimate:
    calls: int
    remaining: int | None
    reserve: int
    leaves: int | None  # remaining - calls; None when the quota is unknown
    warning: str | None  # in plain words, when the calls would leave less than the reserve


def estimate(calls: int, remaining: int | None, reserve: int) -> Estimate:
    """What spending ``calls`` would leave of ``remaining``, with a warning when it goes below ``reserve``."""
    leaves = None if remaining is None else remaining - calls
    warning = None
    if leaves is not None and leaves < reserve:
        if leaves < 0:
            warning = (f"about {calls:,} calls would need more than the {remaining:,} left of the quota "
                       f"(reserve {reserve:,}, {QUOTA_RESERVE_ENV})")
        else:
            warning = (f"about {calls:,} calls would leave {leaves:,} of the quota, below the reserve of "
                       f"{reserve:,} ({QUOTA_RESERVE_ENV})")
    return Estimate(calls=calls, remaining=remaining, reserve=reserve, leaves=leaves, warning=warning)


# -- the summary ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class QuotaSummary:
    remaining: int | None
    seen_at: datetime | None
    spent_24h: int
    spent_30d: int
    burn_per_day: float | None
    runs_out_on: date | None
    reserve: int

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe: dates and times as ISO strings."""
        return {
            "remaining": self.remaining,
            "seen_at": self.seen_at.isoformat() if self.seen_at else None,
            "spent_24h": self.spent_24h,
            "spent_30d": self.spent_30d,
            "burn_per_day": self.burn_per_day,
            "runs_out_on": self.runs_out_on.isoformat() if self.runs_out_on else None,
            "reserve": self.reserve,
            "below_reserve": below_reserve(self.remaining, self.reserve),
        }


def burn_per_day(spent_24h: int, spent_30d: int, days_observed: int) -> float | None:
    """Calls spent a day: the calls of the last 30 days over the days recorded in them (at most 30, the
    first recorded day and today included), so a fresh install is not averaged over days it did not run;
    with less than a day recorded, the last 24 hours. None: nothing recorded yet."""
    days = min(days_observed, BURN_WINDOW_DAYS)
    if days >= 2:
        return spent_30d / days
    if days >= 1 or spent_24h:
        return float(spent_24h)
    return None


def runs_out_on(remaining: int | None, burn: float | None, today: date) -> date | None:
    """The day the quota runs out at this burn rate; None when unknown or nothing is burnt."""
    if remaining is None or burn is None or burn <= 0:
        return None
    return today + timedelta(days=math.floor(remaining / burn))


def summarize(reading: QuotaReading | None, spent_24h: int, spent_30d: int, days_observed: int, reserve: int,
              today: date) -> QuotaSummary:
    """The quota summary from the latest reading and the calls spent."""
    remaining = reading.remaining if reading else None
    burn = burn_per_day(spent_24h, spent_30d, days_observed)
    return QuotaSummary(remaining=remaining, seen_at=reading.seen_at if reading else None, spent_24h=spent_24h,
                        spent_30d=spent_30d, burn_per_day=None if burn is None else round(burn, 1),
                        runs_out_on=runs_out_on(remaining, burn, today), reserve=reserve)
