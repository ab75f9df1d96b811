"""Expected periods (``chart_expected_period``) and the live gap query.

Gaps and coverage are never stored: every door computes them at the moment it shows them, in one
statement over the expected periods (``core.gaps``' definition: the calendar's periods in each
window, corrected by what the gap audit stored from the API) and the stored rankings, merged into
runs of stored periods and runs of gaps with a gaps-and-islands window query."""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from sqlalchemy import (
    Connection, Date, Engine, Integer, and_, case, column, delete, exists, func, insert, literal, select, text, union_all,
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


def _parts(windows: list[Window]):
    """The statement's inputs: each calendar's periods numbered in order, each window (with how many
    calendar periods it spans), and the periods the audit stored as not expected."""
    cals = calendars(windows)
    keys = {key: i for i, key in enumerate(cals)}
    cal = values(column("cal", Integer), column("period", _Day), column("idx", Integer), name="calendar",
                 literal_binds=True).data(
        [(keys[key], day, i) for key, days in cals.items() for i, day in enumerate(days)]).cte("calendar")
    win = values(column("chart_id", Integer), column("cal", Integer), column("first", _Day), column("last", _Day),
                 column("periods", Integer), name="win", literal_binds=True).data(
        [(w.chart_id, keys[w.calendar], w.first, w.last,
          bisect_right(cals[w.calendar], w.last) - bisect_left(cals[w.calendar], w.first)) for w in windows]
    ).cte("win")
    e = chart_expected_period
    skipped = select(e.c.chart_id, e.c.period).where(e.c.expected.is_(False)).cte("skipped")  # a few rows
    return cal, win, skipped


def _expected(windows: list[Window]):
    """(chart_id, period, idx) of every expected period of the windows: the calendar's periods (idx:
    their place in the calendar) unless the audit stored them as not expected, plus the ones it
    stored as expected off the calendar (the API's; idx NULL)."""
    cal, win, skipped = _parts(windows)
    e = chart_expected_period
    from_calendar = (
        select(win.c.chart_id, cal.c.period, cal.c.idx)
        .select_from(win.join(cal, cal.c.cal == win.c.cal)
                     .outerjoin(skipped, and_(skipped.c.chart_id == win.c.chart_id, skipped.c.period == cal.c.period)))
        .where(cal.c.period >= win.c.first, cal.c.period <= win.c.last, skipped.c.period.is_(None))
    )
    off_calendar = (  # a disjoint set: no UNION's sort needed
        select(e.c.chart_id, e.c.period, literal(None, Integer).label("idx"))
        .select_from(e.join(win, win.c.chart_id == e.c.chart_id))
        .where(e.c.expected.is_(True), e.c.in_calendar.is_(False), e.c.period >= win.c.first,
               e.c.period <= win.c.last)
    )
    return union_all(from_calendar, off_calendar).cte("expected"), win


def runs_query(windows: list[Window]):
    """Every chart's gap ranges, and one row counting its stored periods: one statement.

    A gap range is a run of missing periods with consecutive places in the calendar (idx): among a
    chart's missing periods numbered in order, idx - row_number() is constant within a range. So
    only the missing periods (a few percent) are numbered and sorted; the stored ones are counted
    as the window's expected periods (known from the calendar, corrected by the audit's rows)
    minus the missing ones. A period the API published off the calendar is a range of its own; a
    period it skipped ends a range (the backfills never cover it).
    """
    expected, win = _expected(windows)
    r, e = chart_ranking, chart_expected_period
    missing = (
        select(expected.c.chart_id, expected.c.period, expected.c.idx)
        .where(~exists().where(r.c.chart_id == expected.c.chart_id, r.c.period == expected.c.period))
        .cte("missing")
    )
    numbered = (
        select(missing.c.chart_id, missing.c.period, (missing.c.idx - func.row_number().over(
            partition_by=(missing.c.chart_id, missing.c.idx.is_(None)), order_by=missing.c.period)).label("island"),
            case((missing.c.idx.is_(None), missing.c.period)).label("off_calendar"))
        .subquery("numbered")
    )
    gap_ranges = (
        select(numbered.c.chart_id, literal(False).label("stored"), func.min(numbered.c.period).label("start"),
               func.max(numbered.c.period).label("end"), func.count().label("periods"))
        .group_by(numbered.c.chart_id, numbered.c.island, numbered.c.off_calendar)
    )
    corrections = (  # the audit's rows that differ from the calendar, in the window: -1 skipped, +1 off-calendar
        select(e.c.chart_id, func.sum(case((e.c.expected.is_(True), 1), else_=-1)).label("n"))
        .select_from(e.join(win, win.c.chart_id == e.c.chart_id))
        .where(e.c.expected != e.c.in_calendar, e.c.period >= win.c.first, e.c.period <= win.c.last)
        .group_by(e.c.chart_id).subquery("corrections")
    )
    gap_counts = select(missing.c.chart_id, func.count().label("n")).group_by(missing.c.chart_id).subquery("gap_counts")
    stored_count = win.c.periods + func.coalesce(corrections.c.n, 0) - func.coalesce(gap_counts.c.n, 0)
    stored = (
        select(win.c.chart_id, literal(True), win.c.first, win.c.last, stored_count)
        .select_from(win.outerjoin(corrections, corrections.c.chart_id == win.c.chart_id)
                     .outerjoin(gap_counts, gap_counts.c.chart_id == win.c.chart_id))
        .where(stored_count > 0)
    )
    both = union_all(gap_ranges, stored).subquery("runs")
    return select(both).order_by(both.c.chart_id, both.c.stored, both.c.start)


def coverage_subquery(windows: list[Window]):
    """(chart_id, coverage_percent) of the windows: what a list sorts by (``runs_query`` summed)."""
    runs = runs_query(windows).subquery("runs")
    stored = func.sum(case((runs.c.stored, runs.c.periods), else_=0))
    percent = case((func.sum(runs.c.periods) == 0, 100.0), else_=100.0 * stored / func.sum(runs.c.periods))
    return select(runs.c.chart_id, percent.label("coverage_percent")).group_by(runs.c.chart_id).subquery("live_coverage")


MANY_WINDOWS = 50  # up to here, probing the indexes per period is the faster plan


def plan_for_windows(conn: Connection, windows: int) -> None:
    """Merge joins for the live statement over many windows (this transaction only, PostgreSQL).

    The planner cannot estimate the calendar x window join (a VALUES list against another, on a
    range): it guesses a hundred rows for 365,000 and probes the indexes once per period. Merge
    joins read the rankings' (chart_id, period) index once, in the order the expected periods come:
    1,000 charts x a year in half the time of the probes (hash joins: two thirds)."""
    if conn.dialect.name == "postgresql" and windows > MANY_WINDOWS:
        conn.execute(text("SET LOCAL enable_nestloop = off"))
        conn.execute(text("SET LOCAL enable_hashjoin = off"))


def live_runs(engine: Engine, windows: Iterable[Window]) -> list[Run]:
    """Each window's gap ranges, then one run counting its stored periods (spanning the window: not
    consecutive), in chart order."""
    windows = [w for w in windows if w.first <= w.last]  # a schedule created today expects nothing yet
    if not windows:
        return []
    with engine.begin() as conn:
        plan_for_windows(conn, len(windows))
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
    if window.first > window.last:
        return []  # a schedule created today expects nothing yet
    (expected, _), r, x, e = _expected([window]), chart_ranking, chart_sync_execution, chart_expected_period
    newest = func.row_number().over(partition_by=x.c.period, order_by=x.c.started_at.desc())
    failures = (select(x.c.period, x.c.error, newest.label("rn"))  # one read of the chart's failed rows
                .where(x.c.chart_id == window.chart_id, x.c.status == FAILED, x.c.period.is_not(None))
                .subquery("failures"))
    rows = (select(expected.c.period, literal(True).label("expected"), r.c.id.is_not(None).label("stored"),
                   failures.c.error, failures.c.period.is_not(None).label("failed"))
            .select_from(expected.outerjoin(r, and_(r.c.chart_id == expected.c.chart_id,
                                                    r.c.period == expected.c.period))
                         .outerjoin(failures, and_(failures.c.period == expected.c.period, failures.c.rn == 1))))
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
