"""Chart periods and sync frequencies: pure date arithmetic, no Airflow, no database.

A *period* is one publication of a chart, keyed by its ranking date. A daily chart
has one period a day, a weekly chart one a week on its publication weekday, a
monthly chart one on the first of each month. The sync DAG's data interval is
the period: ``data_interval_start`` is the ranking date it syncs.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise

from croniter import croniter

HISTORY_DAYS = 365
CRON_WEEKDAYS = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")


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


def count_periods_between(freq: Frequency, first: date, last: date, weekday: int | None = None) -> int:
    """``len(periods_between(...))`` without building them: how many periods start in [first, last]."""
    start = align(freq, first, weekday)
    if start < first:
        start = next_start(freq, start)
    if start > last:
        return 0
    if freq is Frequency.WEEKLY:
        return (last - start).days // 7 + 1
    if freq is Frequency.MONTHLY:
        return (last.year - start.year) * 12 + last.month - start.month + 1
    return (last - start).days + 1


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


def published_at(freq: Frequency, period_start: date) -> datetime:
    """The earliest a period is published: the end of its interval (UTC midnight), when its sync
    starts waiting for it (``PUBLICATION_WAIT``). Freshness counts from here."""
    return datetime.combine(next_start(freq, period_start), datetime.min.time(), tzinfo=UTC)


def latest_complete_period(freq: Frequency, now: datetime, weekday: int | None = None) -> Period:
    """The newest period whose interval has ended by ``now`` (what a scheduled run would sync)."""
    current = period_containing(freq, now.date(), weekday)
    previous_day = current.start - timedelta(days=1)
    return period_containing(freq, previous_day, weekday)



# -- every per-frequency timing table ---------------------------------------------------------------
# A Deadline Alert's interval is one fixed timedelta per DAG. Months are 28-31 days: take the longest,
# so a deadline is never early (February's is up to 3 days late, never a false alarm).
PERIOD_LENGTH = {
    Frequency.DAILY: timedelta(days=1),
    Frequency.WEEKLY: timedelta(days=7),
    Frequency.MONTHLY: timedelta(days=31),
}
# How long after its period ends a sync keeps waiting for the API to publish the period.
PUBLICATION_WAIT = {
    Frequency.DAILY: timedelta(hours=36),
    Frequency.WEEKLY: timedelta(days=4),
    Frequency.MONTHLY: timedelta(days=10),
}
DEFAULT_PUBLICATION_WAIT = timedelta(days=2)
POKE_INTERVAL = timedelta(minutes=30)  # how often a waiting sync asks again
# How long after its period ends a period must be synced, unless the schedule's deadline_hours says.
DEFAULT_DEADLINE_HOURS = {Frequency.DAILY: 12.0, Frequency.WEEKLY: 48.0, Frequency.MONTHLY: 96.0}
INTERVAL_DEADLINE_FACTOR = 2  # custom and cron schedules: twice their interval
# Overdue: no success for longer than the period plus a grace for publication delays and retries.
OVERDUE_GRACE = {
    Frequency.DAILY: timedelta(hours=36),
    Frequency.WEEKLY: timedelta(days=8),
    Frequency.MONTHLY: timedelta(days=33),
}
INTERVAL_GRACE_FACTOR = 2  # custom and cron schedules: twice their interval
FALLBACK_GRACE = OVERDUE_GRACE[Frequency.WEEKLY]  # an unreadable frequency or cron expression
# Runtime degradation: a run still going after the DAG's recent average runtime plus this slack.
# The slack covers a late publication (the sync task re-checks every POKE_INTERVAL).
DEGRADATION_SLACK = timedelta(hours=1)
AVERAGE_RUNTIME_RUNS = 20  # the average is over the last 20 successful runs ...
AVERAGE_RUNTIME_MIN_RUNS = 5  # ... and only once there are 5 (a new chart has no baseline yet)

_CRON_BASE = datetime(2024, 1, 1, tzinfo=UTC)  # a fixed base keeps a cron's interval stable
_CRON_SAMPLES = 60


def _as_frequency(value: Frequency | str) -> Frequency:
    return value if isinstance(value, Frequency) else Frequency.parse(value)


def cron_interval(expression: str) -> timedelta:
    """The longest gap between consecutive fires of a cron expression (60 fires from a fixed base).

    ValueError for an expression that does not parse or never fires (e.g. ``0 0 31 2 *``).
    """
    try:
        fires = croniter(expression, _CRON_BASE)
        times = [fires.get_next(datetime) for _ in range(_CRON_SAMPLES)]
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{expression!r} is not a cron expression that fires: {exc}") from None
    return max(b - a for a, b in pairwise(times))


def interval_length(frequency: Frequency | str, custom_interval_hours: int | None = None,
                    cron_expression: str | None = None) -> timedelta:
    """How long one period (one data interval) of a schedule lasts; the longest for months and crons."""
    freq = _as_frequency(frequency)
    if freq is Frequency.CUSTOM:
        return timedelta(hours=custom_interval_hours or 24)
    if freq is Frequency.CRON:
        return cron_interval(cron_expression) if cron_expression else PERIOD_LENGTH[Frequency.WEEKLY]
    return PERIOD_LENGTH[freq]


def publication_wait(freq: Frequency) -> timedelta:
    return PUBLICATION_WAIT.get(freq, DEFAULT_PUBLICATION_WAIT)


def default_deadline_hours(frequency: Frequency | str, custom_interval_hours: int | None = None,
                           cron_expression: str | None = None) -> float:
    freq = _as_frequency(frequency)
    if freq in DEFAULT_DEADLINE_HOURS:
        return DEFAULT_DEADLINE_HOURS[freq]
    length = interval_length(freq, custom_interval_hours, cron_expression)
    return INTERVAL_DEADLINE_FACTOR * length.total_seconds() / 3600


def deadline_hours(frequency: Frequency | str, configured: float | None,
                   custom_interval_hours: int | None = None, cron_expression: str | None = None) -> float:
    """The schedule's ``deadline_hours``, else the frequency's default."""
    if configured is not None and configured > 0:
        return float(configured)
    return default_deadline_hours(frequency, custom_interval_hours, cron_expression)


def sync_deadline(frequency: Frequency | str, configured: float | None,
                  custom_interval_hours: int | None = None, cron_expression: str | None = None) -> timedelta:
    """Logical date -> deadline: one period length (to the data interval's end) plus the allowed hours."""
    hours = deadline_hours(frequency, configured, custom_interval_hours, cron_expression)
    return interval_length(frequency, custom_interval_hours, cron_expression) + timedelta(hours=hours)


def overdue_after(frequency: str, custom_interval_hours: int | None = None,
                  cron_expression: str | None = None) -> timedelta:
    """How long after its last success (or its creation) an active schedule becomes overdue."""
    try:
        freq = Frequency.parse(frequency or "")
    except ValueError:
        return FALLBACK_GRACE
    if freq in OVERDUE_GRACE:
        return OVERDUE_GRACE[freq]
    if freq is Frequency.CUSTOM:
        if not custom_interval_hours or custom_interval_hours <= 0:
            return FALLBACK_GRACE
        return timedelta(hours=custom_interval_hours * INTERVAL_GRACE_FACTOR)
    if not cron_expression:
        return FALLBACK_GRACE
    try:
        return cron_interval(cron_expression) * INTERVAL_GRACE_FACTOR
    except ValueError:
        return FALLBACK_GRACE
