"""Chart periods and sync frequencies: pure date arithmetic, no Airflow, no database.

A *period* is one publication of a chart, keyed by its ranking date. A daily chart
has one period a day, a weekly chart one a week on its publication weekday, a
monthly chart one on the first of each month. The sync DAG's data interval is
the period: ``data_interval_start`` is the ranking date it syncs.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date, datetime, timedelta

HISTORY_DAYS = 365
CRON_WEEKDAYS = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")
MAX_CUSTOM_HOURS = 24 * 31


class Frequency(str, enum.Enum):
    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"
    CUSTOM = "custom"
    CRON = "cron"

    @classmethod
    def parse(cls, value: str) -> Frequency:
        try:
            return cls(value.strip().lower())
        except ValueError:
            allowed = ", ".join(f.value for f in cls)
            raise ValueError(f"unknown frequency {value!r} (expected one of: {allowed})") from None

    @property
    def is_calendar(self) -> bool:
        return self in (Frequency.DAILY, Frequency.WEEKLY, Frequency.MONTHLY)


@dataclass(frozen=True, order=True)
class Period:
    """One publication of a chart: ``start`` is the ranking date, ``end`` the next one."""

    start: date
    end: date

    @property
    def key(self) -> str:
        return self.start.isoformat()


def detect_frequency(api_frequency: str | None, ranking_dates: list[date] | None = None) -> Frequency:
    """The chart's frequency: the API's word for it, else the spacing of its dates, else weekly."""
    if api_frequency:
        word = api_frequency.strip().lower()
        for freq in (Frequency.DAILY, Frequency.WEEKLY, Frequency.MONTHLY):
            if word.startswith(freq.value[:4]):
                return freq
    if ranking_dates and len(ranking_dates) >= 2:
        ordered = sorted(ranking_dates)
        gaps = sorted((b - a).days for a, b in zip(ordered, ordered[1:]))
        typical = gaps[len(gaps) // 2]
        if typical <= 1:
            return Frequency.DAILY
        if typical <= 8:
            return Frequency.WEEKLY
        return Frequency.MONTHLY
    return Frequency.WEEKLY


def align(freq: Frequency, day: date, weekday: int | None = None) -> date:
    """The start of the period that contains ``day`` (weekday: 0 = Monday, weekly charts)."""
    if freq is Frequency.WEEKLY:
        anchor = 0 if weekday is None else weekday
        return day - timedelta(days=(day.weekday() - anchor) % 7)
    if freq is Frequency.MONTHLY:
        return day.replace(day=1)
    return day


def next_start(freq: Frequency, start: date) -> date:
    if freq is Frequency.WEEKLY:
        return start + timedelta(days=7)
    if freq is Frequency.MONTHLY:
        return (start.replace(day=28) + timedelta(days=4)).replace(day=1)
    return start + timedelta(days=1)


def period_containing(freq: Frequency, day: date, weekday: int | None = None) -> Period:
    start = align(freq, day, weekday)
    return Period(start, next_start(freq, start))


def periods_between(freq: Frequency, first: date, last: date, weekday: int | None = None) -> list[Period]:
    """Every period whose start lies in [first, last], in order."""
    start = align(freq, first, weekday)
    if start < first:
        start = next_start(freq, start)
    periods = []
    while start <= last:
        end = next_start(freq, start)
        periods.append(Period(start, end))
        start = end
    return periods


def history_start(freq: Frequency, created: date, weekday: int | None = None) -> date:
    """First period of the history window: one year before creation, aligned (fixed once set)."""
    first = created - timedelta(days=HISTORY_DAYS)
    start = align(freq if freq.is_calendar else Frequency.DAILY, first, weekday)
    if start < first:
        start = next_start(freq if freq.is_calendar else Frequency.DAILY, start)
    return start


def cron_for(freq: Frequency, weekday: int | None = None) -> str:
    """Cron of the period boundaries (UTC midnight) for calendar frequencies."""
    if freq is Frequency.DAILY:
        return "0 0 * * *"
    if freq is Frequency.WEEKLY:
        return f"0 0 * * {CRON_WEEKDAYS[0 if weekday is None else weekday]}"
    if freq is Frequency.MONTHLY:
        return "0 0 1 * *"
    raise ValueError(f"{freq.value} has no calendar cron")


def latest_complete_period(freq: Frequency, now: datetime, weekday: int | None = None) -> Period:
    """The newest period whose interval has ended by ``now`` (what a scheduled run would sync)."""
    current = period_containing(freq, now.date(), weekday)
    previous_day = current.start - timedelta(days=1)
    return period_containing(freq, previous_day, weekday)


def validate_custom_hours(hours: int | None) -> int:
    if hours is None:
        raise ValueError("custom_interval_hours is required for the custom frequency")
    if not isinstance(hours, int) or isinstance(hours, bool):
        raise ValueError("custom_interval_hours must be a whole number of hours")
    if hours <= 0 or hours > MAX_CUSTOM_HOURS:
        raise ValueError(f"custom_interval_hours must be between 1 and {MAX_CUSTOM_HOURS}")
    return hours
