"""Statistics by period (pure): buckets of periods, coverage per bucket, catchup progress and its ETA,
freshness (how long after its publication a period was stored).

Period data is plotted over the period it is about, never over the day a sync ran: a year of catchup
runs in an afternoon, and grouped by execution day it would all fall on one point.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

DAY, WEEK, MONTH = "day", "week", "month"
CATCHUP_RATE_WINDOW = timedelta(hours=1)  # the rate of a catchup: periods finished in the last hour


def bucket_size(days: int) -> str:
    """How to group the periods of a window of ``days`` so a plot has a readable number of points."""
    if days <= 31:
        return DAY
    return WEEK if days <= 120 else MONTH


def bucket_start(day: date, size: str) -> date:
    """The first day of the bucket holding ``day``: the day, its ISO week's Monday, or the 1st."""
    if size == WEEK:
        return day - timedelta(days=day.weekday())
    if size == MONTH:
        return day.replace(day=1)
    return day


def bucket_label(day: date, size: str) -> str:
    return f"{day:%b %Y}" if size == MONTH else f"{day:%b %d}"


def percent_by_bucket(counts: Iterable[tuple[date, int, int]], size: str = MONTH) -> list[tuple[date, float]]:
    """Per bucket (oldest first), ``part`` as a percentage of ``whole`` from ``(period, part, whole)``
    rows: stored of expected periods, say. Buckets with nothing expected are left out."""
    sums: dict[date, list[int]] = {}
    for day, part, whole in counts:
        tally = sums.setdefault(bucket_start(day, size), [0, 0])
        tally[0] += part
        tally[1] += whole
    return [(start, min(100.0, 100.0 * part / whole)) for start, (part, whole) in sorted(sums.items()) if whole]


def sum_by_bucket(rows: Iterable[tuple[date, Sequence[float]]], size: str = MONTH) -> list[tuple[date, list[float]]]:
    """Per bucket (oldest first), the column sums of ``(period, values)`` rows: outcomes per month, say."""
    sums: dict[date, list[float]] = {}
    for day, values in rows:
        tally = sums.setdefault(bucket_start(day, size), [0.0] * len(values))
        for i, value in enumerate(values):
            tally[i] += value
    return sorted(sums.items())


def mean_by_bucket(rows: Iterable[tuple[date, float, int]], size: str = MONTH) -> list[tuple[date, float]]:
    """Per bucket (oldest first), the mean of ``(period, mean, weight)`` rows weighted by ``weight``."""
    sums: dict[date, list[float]] = {}
    for day, mean, weight in rows:
        if weight:
            tally = sums.setdefault(bucket_start(day, size), [0.0, 0])
            tally[0] += mean * weight
            tally[1] += weight
    return [(start, total / weight) for start, (total, weight) in sorted(sums.items())]


@dataclass(frozen=True)
class CatchupProgress:
    """Periods done of the periods due in the history window, the recent rate and when it will be done."""

    done: int
    total: int
    recent: int  # periods finished within ``window`` before ``now``
    now: datetime
    window: timedelta = CATCHUP_RATE_WINDOW

    @property
    def remaining(self) -> int:
        return max(self.total - self.done, 0)

    @property
    def complete(self) -> bool:
        return self.remaining == 0

    @property
    def percent(self) -> float:
        return 100.0 if self.total <= 0 else min(100.0, 100.0 * self.done / self.total)

    @property
    def running(self) -> bool:
        """A catchup is under way: periods are missing and some finished lately."""
        return not self.complete and self.recent > 0

    @property
    def rate_per_hour(self) -> float | None:
        if self.recent <= 0:
            return None
        return self.recent / (self.window.total_seconds() / 3600)

    @property
    def eta(self) -> datetime | None:
        """When the last period should be done at the recent rate (None: done, or no recent progress)."""
        rate = self.rate_per_hour
        if self.complete or rate is None:
            return None
        return self.now + timedelta(hours=self.remaining / rate)


def lag_seconds(stored_at: datetime | None, published_at: datetime) -> float | None:
    """How long after its publication a period was stored (0 when stored early, None when never)."""
    if stored_at is None:
        return None
    return max((stored_at - published_at).total_seconds(), 0.0)


def age_unit(seconds: float) -> tuple[float, str]:
    """A unit that keeps durations on a plot readable: minutes, hours or days (divisor, name)."""
    if seconds < 2 * 3600:
        return 60.0, "min"
    return (3600.0, "h") if seconds < 3 * 86400 else (86400.0, "days")
