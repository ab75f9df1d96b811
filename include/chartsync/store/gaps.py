"""Expected periods (``chart_expected_period``) and the live gap query.

Gaps and coverage are never stored: every door computes them at the moment it shows them, in one
statement over the expected periods (``core.gaps``' definition: the calendar's periods in each
window, corrected by what the gap audit stored from the API) and the stored rankings, merged into
runs of stored periods and runs of gaps with a gaps-and-islands window query."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from sqlalchemy import (
    Date, Engine, Integer, and_, case, column, delete, exists, func, insert, literal, select, text, union_all,
    values,
)
from sqlalchemy.types import TypeDecorator

from chartsync.core.gaps import Run, Window, calendars
from chartsync.core.outcomes import FAILED
from chartsync.core.timestamps import as_utc
from chartsync.store.tables import chart_expected_period, chart_ranking, chart_sync_execution


def replace_expected_periods(engine: Engine, chart_id: int, rows: list[dict], *, keep_if_unknown: bool) -> bool:
    """Store a chart's expected periods; with ``keep_if_unknown`` (the API was not asked) rows already
    stored are kept. Returns whether anything was written."""
    with engine.begin() as conn:
        if keep_if_unknown and conn.execute(select(func.count()).select_from(chart_expected_period).where(
                chart_expected_period.c.chart_id == chart_id)).scalar():
            return False  # keep what the API told us last time
        conn.execute(delete(chart_expected_period).where(chart_expected_period.c.chart_id == chart_id))
        if rows:
            conn.execute(insert(chart_expected_period), rows)
    return True


class _Day(TypeDecorator):
    """A date written into the statement (VALUES of thousands of rows need no bind parameters)."""

    impl = Date
    cache_ok = True

    def literal_processor(self, dialect):
        if dialect.name == "postgresql":
            return lambda value: f"DATE '{value.isoformat()}'"
        return lambda value: f"'{value.isoformat()}'"


def _expected(windows: list[Window]):
    """(chart_id, period) of every expected period of the windows: the calendar's periods unless the
    audit stored them as not expected, plus the ones it stored as expected (the API's, off-calendar)."""
    cals = calendars(windows)
    keys = {key: i for i, key in enumerate(cals)}
    cal = values(column("cal", Integer), column("period", _Day), name="calendar", literal_binds=True).data(
        [(keys[key], day) for key, days in cals.items() for day in days]).cte("calendar")
    win = values(column("chart_id", Integer), column("cal", Integer), column("first", _Day),
                 column("last", _Day), name="win", literal_binds=True).data(
        [(w.chart_id, keys[w.calendar], w.first, w.last) for w in windows]).cte("win")
    e = chart_expected_period
    skipped = select(e.c.chart_id, e.c.period).where(e.c.expected.is_(False)).cte("skipped")  # a few rows
    from_calendar = (  # the calendar's periods, unless the audit stored one as not expected
        select(win.c.chart_id, cal.c.period)
        .select_from(win.join(cal, cal.c.cal == win.c.cal)
                     .outerjoin(skipped, and_(skipped.c.chart_id == win.c.chart_id, skipped.c.period == cal.c.period)))
        .where(cal.c.period >= win.c.first, cal.c.period <= win.c.last, skipped.c.period.is_(None))
    )
    off_calendar = (  # the API's periods off the calendar (a disjoint set: no UNION's sort needed)
        select(e.c.chart_id, e.c.period)
        .select_from(e.join(win, win.c.chart_id == e.c.chart_id))
        .where(e.c.expected.is_(True), e.c.in_calendar.is_(False), e.c.period >= win.c.first,
               e.c.period <= win.c.last)
    )
    return union_all(from_calendar, off_calendar).cte("expected")


def runs_query(windows: list[Window]):
    """Every chart's gap ranges, and one row of its stored periods (how many): one statement.

    Gaps-and-islands: among a chart's expected periods numbered in order (rn_all), the missing ones
    numbered again keep a constant rn_all - row_number() within a range. Only the missing periods
    (a few percent) go through the second numbering; the stored ones are only counted.
    """
    expected, r = _expected(windows), chart_ranking
    marked = (
        select(expected.c.chart_id, expected.c.period, r.c.id.is_not(None).label("stored"),
               func.row_number().over(partition_by=expected.c.chart_id, order_by=expected.c.period).label("rn_all"))
        .select_from(expected.outerjoin(r, and_(r.c.chart_id == expected.c.chart_id,
                                                r.c.period == expected.c.period)))
        .cte("marked")
    )
    missing = (
        select(marked.c.chart_id, marked.c.period,
               (marked.c.rn_all - func.row_number().over(partition_by=marked.c.chart_id, order_by=marked.c.period))
               .label("island"))
        .where(marked.c.stored.is_(False))
        .cte("missing")
    )
    gap_ranges = (
        select(missing.c.chart_id, literal(False).label("stored"), func.min(missing.c.period).label("start"),
               func.max(missing.c.period).label("end"), func.count().label("periods"))
        .group_by(missing.c.chart_id, missing.c.island)
    )
    stored = (
        select(marked.c.chart_id, literal(True), func.min(marked.c.period), func.max(marked.c.period), func.count())
        .where(marked.c.stored.is_(True)).group_by(marked.c.chart_id)
    )
    both = union_all(gap_ranges, stored).subquery("runs")
    return select(both).order_by(both.c.chart_id, both.c.start)


def coverage_subquery(windows: list[Window]):
    """(chart_id, coverage_percent) of the windows: what a list sorts by (``runs_query`` summed)."""
    runs = runs_query(windows).subquery("runs")
    stored = func.sum(case((runs.c.stored, runs.c.periods), else_=0))
    percent = case((func.sum(runs.c.periods) == 0, 100.0), else_=100.0 * stored / func.sum(runs.c.periods))
    return select(runs.c.chart_id, percent.label("coverage_percent")).group_by(runs.c.chart_id).subquery("live_coverage")


MANY_WINDOWS = 50  # up to here, probing the indexes per period is the faster plan


def live_runs(engine: Engine, windows: Iterable[Window]) -> list[Run]:
    """Each window's gap ranges and one run that counts its stored periods (from the first stored
    to the last: not consecutive), in chart order."""
    windows = list(windows)
    if not windows:
        return []
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql" and len(windows) > MANY_WINDOWS:
            # The planner cannot estimate the calendar x window join (a VALUES list against another,
            # on a range): it guesses a hundred rows for 365,000 and probes both indexes once per
            # period. Hash joins read each table once: 1,000 charts x a year in half the time.
            conn.execute(text("SET LOCAL enable_nestloop = off"))
        return [Run(row.chart_id, _day(row.start), _day(row.end), int(row.periods), bool(row.stored))
                for row in conn.execute(runs_query(windows))]


@dataclass(frozen=True)
class PeriodFact:
    """One period of a chart's strip: expected or not (the API skipped it), stored, the last failure."""

    period: date
    expected: bool
    stored: bool
    error: str | None
    failed: bool


def period_facts(engine: Engine, window: Window) -> list[PeriodFact]:
    """Every expected period of one chart (and every period the audit stored as not expected) with
    whether it is stored and its newest failure: one statement, the same expected set as ``runs_query``."""
    expected, r, x, e = _expected([window]), chart_ranking, chart_sync_execution, chart_expected_period
    last_error = (select(x.c.error).where(x.c.chart_id == window.chart_id, x.c.period == expected.c.period,
                                          x.c.status == FAILED)
                  .order_by(x.c.started_at.desc()).limit(1).scalar_subquery())
    failed = exists().where(x.c.chart_id == window.chart_id, x.c.period == expected.c.period, x.c.status == FAILED)
    rows = (select(expected.c.period, literal(True).label("expected"), r.c.id.is_not(None).label("stored"),
                   last_error.label("error"), failed.label("failed"))
            .select_from(expected.outerjoin(r, and_(r.c.chart_id == expected.c.chart_id,
                                                    r.c.period == expected.c.period))))
    skipped = select(e.c.period, literal(False), literal(False), literal(None), literal(False)).where(
        e.c.chart_id == window.chart_id, e.c.expected.is_(False))
    with engine.connect() as conn:
        found = [PeriodFact(_day(row[0]), bool(row[1]), bool(row[2]), row[3], bool(row[4]))
                 for row in conn.execute(rows.union_all(skipped))]
    return sorted(found, key=lambda f: f.period)


def audit_facts(engine: Engine, chart_ids: list[int], last: dict[int, date]) -> dict[int, dict]:
    """What the gap audit last learnt of each chart: calendar_only and api_only periods (up to its
    window's last period) and when it asked (``audited_at``)."""
    e = chart_expected_period
    facts: dict[int, dict] = {}
    with engine.connect() as conn:
        for row in conn.execute(select(e.c.chart_id, e.c.period, e.c.in_calendar, e.c.in_api, e.c.refreshed_at)
                                .where(e.c.chart_id.in_(chart_ids)).order_by(e.c.chart_id, e.c.period)):
            fact = facts.setdefault(row.chart_id, {"calendar_only": [], "api_only": [], "audited_at": None})
            fact["audited_at"] = max(filter(None, [fact["audited_at"], as_utc(row.refreshed_at)]))
            if row.in_calendar != row.in_api and _day(row.period) <= last.get(row.chart_id, date.max):
                fact["calendar_only" if row.in_calendar else "api_only"].append(_day(row.period).isoformat())
    return facts


def _day(value) -> date:
    return date.fromisoformat(value) if isinstance(value, str) else value
