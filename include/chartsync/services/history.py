"""A schedule's history by period, its catchup progress, and the fleet's statistics by period: what the
schedule pages, the stats page and the REST API show (the SQL is ``store.history``, the maths
``core.periods``, the calendars ``core.calendar``)."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import Engine

from chartsync.core import calendar
from chartsync.core import periods
from chartsync.core.outcomes import SKIPPED
from chartsync.core.paging import Page, PageRequest
from chartsync.core.schedule import ScheduleConfig, ScheduleError
from chartsync.services.schedules import get_schedule
from chartsync.store import history as store
from chartsync.store import schedules as schedule_store

def period_history(engine: Engine, schedule_id: int, *, status: str | None = None, first: date | None = None,
                   last: date | None = None, paging: PageRequest = PageRequest(25)) -> Page[store.PeriodRow]:
    """A schedule's history, one row per period (latest status, tries folded in), newest first;
    ScheduleNotFound for an unknown id. A range given end first is read the right way round."""
    if first and last and first > last:
        first, last = last, first
    row = get_schedule(engine, schedule_id)
    return store.period_history(engine, row.chart_id, status=status, first=first, last=last, paging=paging)


# -- catchup ------------------------------------------------------------------------------------------
def periods_due(config: ScheduleConfig, now: datetime) -> int:
    """How many periods of the history window have ended by ``now`` (what a complete catchup stores)."""
    freq = config.period_frequency
    newest = calendar.latest_complete_period(freq, now, config.weekday).start
    return calendar.count_periods_between(freq, config.history_start, newest, config.weekday)


@dataclass(frozen=True)
class SchedulePeriods:
    """What the schedule table and page say about a schedule's periods."""

    failed: int  # periods whose latest try failed
    catchup: periods.CatchupProgress | None  # None: no history sync (or an invalid configuration)


def schedule_periods(engine: Engine, schedule_ids: list[int], *, now: datetime | None = None
                     ) -> dict[int, SchedulePeriods]:
    """Schedule id -> failed periods and catchup progress (periods done of the periods due, the last
    hour's rate, the ETA): the rows by id, then one query over their executions."""
    now = now or datetime.now(UTC)
    rows = schedule_store.rows_by_id(engine, schedule_ids) if schedule_ids else []
    counts = store.period_counts(engine, [r.chart_id for r in rows], now - periods.CATCHUP_RATE_WINDOW)
    result = {}
    for row in rows:
        found = counts.get(row.chart_id, store.PeriodCounts())
        try:
            config = ScheduleConfig.from_row(row)
        except ScheduleError:
            config = None
        catchup = (periods.CatchupProgress(found.done, periods_due(config, now), found.recent, now)
                   if config is not None and config.sync_historical_data else None)
        result[row.id] = SchedulePeriods(found.failed, catchup)
    return result


# -- statistics by period -----------------------------------------------------------------------------
@dataclass(frozen=True)
class PeriodStats:
    """Figures by period bucket (``size``: day, week or month), oldest first."""

    size: str
    coverage: list[tuple[date, float]]  # percent of the expected periods stored
    outcomes: list[tuple[date, list[float]]]  # periods stored, failed (never stored), skipped by the API
    freshness: dict[str, list[tuple[date, float]]]  # series name -> seconds from publication to stored


def schedule_period_stats(engine: Engine, config: ScheduleConfig, cells: Iterable[tuple[date, bool | None]],
                          *, first: date | None = None) -> PeriodStats:
    """One schedule's periods by month: coverage from its coverage strip's cells (``(period, stored)``,
    stored None for a period not expected), outcomes and freshness from its tries and stored rankings."""
    outcomes = store.period_outcomes(engine, config.chart_id, first)
    freq = config.period_frequency
    lag = [(o.period, periods.lag_seconds(o.stored_at, calendar.published_at(freq, o.period)))
           for o in outcomes]
    return PeriodStats(
        periods.MONTH,
        periods.percent_by_bucket(((day, int(bool(stored)), 1) for day, stored in cells if stored is not None)),
        periods.sum_by_bucket((o.period, _outcome(o.stored_at is not None, o.status)) for o in outcomes),
        {"each period": [(day, seconds) for day, seconds in lag if seconds is not None]},
    )


def _outcome(stored: bool, status: str) -> list[float]:
    """A period's outcome as the plots stack it: stored, else skipped by the API, else failed."""
    if stored:
        return [1.0, 0.0, 0.0]
    return [0.0, 0.0, 1.0] if status == SKIPPED else [0.0, 1.0, 0.0]


def fleet_period_stats(engine: Engine, days: int, *, now: datetime | None = None) -> PeriodStats:
    """Every schedule's periods of the last ``days`` days, by day, week or month (by the window)."""
    now = now or datetime.now(UTC)
    last, first = now.date(), now.date() - timedelta(days=days - 1)
    size = periods.bucket_size(days)
    figures = store.fleet_period_figures(engine, first, last)
    stored: dict[date, int] = {}
    for f in figures:
        stored[f.period] = stored.get(f.period, 0) + f.stored
    expected = _expected_periods(store.schedule_calendars(engine), first, now)
    coverage = periods.percent_by_bucket(((day, stored.get(day, 0), n) for day, n in expected.items()), size)
    outcomes = periods.sum_by_bucket(((f.period, [f.stored, f.failed, f.skipped]) for f in figures), size)
    freshness: dict[str, list] = {}
    for f in figures:
        if f.mean_stored_epoch is None:
            continue
        freq = calendar.detect_frequency(f.chart_frequency)
        lag = max(f.mean_stored_epoch - calendar.published_at(freq, f.period).timestamp(), 0.0)
        freshness.setdefault(f"{freq.value} charts", []).append((f.period, lag, f.stored))
    return PeriodStats(size, coverage, outcomes,
                       {name: periods.mean_by_bucket(rows, size) for name, rows in sorted(freshness.items())})


def _expected_periods(groups: list, first: date, now: datetime) -> dict[date, int]:
    """Period date -> how many schedules expect it, from schedule groups sharing a calendar (see
    ``store.schedule_calendars``): per calendar, the history starts sorted, and each period counts
    the schedules whose window has begun by then."""
    calendars: dict[tuple, list[tuple[date, int]]] = {}
    for g in groups:
        try:
            freq = calendar.Frequency.parse(g.sync_frequency)
        except ValueError:
            continue
        if not freq.is_calendar:
            freq = calendar.detect_frequency(g.chart_frequency)
        weekday = g.publication_weekday if freq is calendar.Frequency.WEEKLY else None
        calendars.setdefault((freq, weekday), []).append((g.history_start, int(g.schedules)))
    expected: dict[date, int] = {}
    for (freq, weekday), starts in calendars.items():
        starts.sort()
        days = [d for d, _ in starts]
        running = [sum(n for _, n in starts[:i + 1]) for i in range(len(starts))]
        newest = calendar.latest_complete_period(freq, now, weekday).start
        for p in calendar.periods_between(freq, max(first, days[0]), newest, weekday):
            i = bisect_right(days, p.start)
            if i:
                expected[p.start] = expected.get(p.start, 0) + running[i - 1]
    return expected
