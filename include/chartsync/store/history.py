"""The execution log read by period: one row per period a chart synced (its latest try's status, its
tries folded in), the failed periods and catchup counts of the schedule table, and the fleet's figures
by period.

A period's rows are every try of every run that synced it (a catchup run, a manual trigger, a
backfill); a row with no period (a try that failed before it knew its period) is a group of its own
run. "Latest" is by start time, then id: the order ``store.executions`` keeps a try's failure last in.
Each read is one window-function query over the chart's rows (the ``(chart_id, started_at)`` index),
so a page part costs one query whatever the history's length.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import Engine, and_, case, func, or_, select

from chartsync.core.outcomes import EXECUTION_STATUSES, FAILED, SKIPPED, SUCCESS
from chartsync.core.paging import Page, PageRequest
from chartsync.core.timestamps import as_utc, midnight
from chartsync.store.stats import epoch
from chartsync.store.tables import chart, chart_sync_execution, chart_sync_schedule

TRY_COLUMNS = ("id", "dag_id", "run_id", "try_number", "period", "status", "started_at", "completed_at",
               "duration_seconds", "rankings_created", "rankings_updated", "entries_written", "tracks_created",
               "tracks_updated", "api_requests", "error")


@dataclass(frozen=True)
class PeriodRow:
    """One period of a chart's history: its latest try (``latest``), how many tries, when it was
    first stored, and every try newest first (``tries``, the latest included)."""

    period: date | None
    status: str
    tries: int
    first_stored_at: datetime | None
    latest: dict
    attempts: list[dict] = field(default_factory=list)

    @property
    def dag_id(self) -> str:
        return self.latest["dag_id"]

    @property
    def run_id(self) -> str:
        return self.latest["run_id"]


def _group(e) -> tuple:
    """What makes one period's rows a group: the chart and period, or the run for rows without one."""
    return e.chart_id, e.period, case((e.period.is_(None), e.run_id))


def _ranked(*conditions):
    """Every row of the matching executions with its rank in its period (1 = latest), its period's
    try count and the period's first successful finish."""
    e = chart_sync_execution.c
    group = _group(e)
    return select(
        *(getattr(e, c) for c in TRY_COLUMNS), e.chart_id,
        func.row_number().over(partition_by=group, order_by=(e.started_at.desc(), e.id.desc())).label("rn"),
        func.count().over(partition_by=group).label("tries"),
        func.min(case((e.status == SUCCESS, e.completed_at))).over(partition_by=group).label("first_stored_at"),
    ).where(*conditions).subquery("ranked")


def _try(row) -> dict:
    return {c: as_utc(v) if isinstance(v := getattr(row, c), datetime) else v for c in TRY_COLUMNS}


def period_history(engine: Engine, chart_id: int, *, status: str | None = None, first: date | None = None,
                   last: date | None = None, paging: PageRequest = PageRequest(25)) -> Page[PeriodRow]:
    """A chart's periods, newest period first (periodless tries last), filtered by the latest try's
    status and a period range; each with its tries. Two queries: the page (with the total), the tries."""
    if status is not None and status not in EXECUTION_STATUSES:
        raise ValueError(f"status must be one of {', '.join(EXECUTION_STATUSES)}")
    e = chart_sync_execution.c
    ranked = _ranked(e.chart_id == chart_id, *([e.period >= first] if first else []),
                     *([e.period <= last] if last else []))
    r = ranked.c
    latest = select(ranked, func.count().over().label("total")).where(
        r.rn == 1, *([r.status == status] if status else []))
    with engine.connect() as conn:
        rows = conn.execute(latest.order_by(r.period.is_(None), r.period.desc(), r.started_at.desc(), r.id.desc())
                            .limit(paging.limit).offset(paging.offset)).all()
        if rows:
            total = int(rows[0].total)
        else:  # past the last page (or nothing): count alone
            total = conn.execute(select(func.count()).select_from(latest.subquery())).scalar_one()
        periods = [row.period for row in rows if row.period is not None]
        runs = [row.run_id for row in rows if row.period is None]
        tries = conn.execute(select(chart_sync_execution).where(e.chart_id == chart_id, or_(
            e.period.in_(periods), and_(e.period.is_(None), e.run_id.in_(runs))))
            .order_by(e.started_at.desc(), e.id.desc())).all() if rows else []
    attempts: dict[tuple, list[dict]] = {}
    for t in tries:
        attempts.setdefault((t.period, t.run_id if t.period is None else None), []).append(_try(t))
    items = [PeriodRow(row.period, row.status, int(row.tries),
                       as_utc(row.first_stored_at) if row.first_stored_at is not None else None, _try(row),
                       attempts.get((row.period, row.run_id if row.period is None else None), []))
             for row in rows]
    return Page(items, total, paging.limit, paging.offset)


@dataclass(frozen=True)
class PeriodCounts:
    failed: int = 0  # periods whose latest try failed (what the history's status filter finds)
    done: int = 0  # periods of the history window stored, or skipped because the API never published them
    recent: int = 0  # of those, first done since ``recent_since``


def period_counts(engine: Engine, chart_ids: Sequence[int], recent_since: datetime) -> dict[int, PeriodCounts]:
    """Per chart, its failed periods and its catchup's periods done: one scan of the charts' executions,
    grouped by period (a period's latest try failed when its latest failed start is its latest start)."""
    if not chart_ids:
        return {}
    e, s = chart_sync_execution.c, chart_sync_schedule.c
    done = e.status.in_((SUCCESS, SKIPPED))
    per_period = (select(e.chart_id, e.period, func.max(e.started_at).label("latest"),
                         func.max(case((e.status == FAILED, e.started_at))).label("latest_failed"),
                         func.min(case((done, e.completed_at))).label("done_at"))
                  .where(e.chart_id.in_(list(chart_ids))).group_by(*_group(e)).subquery("per_period"))
    p = per_period.c
    in_window = and_(p.done_at.is_not(None), p.period >= s.history_start)
    query = (select(p.chart_id, func.sum(case((p.latest_failed == p.latest, 1), else_=0)).label("failed"),
                    func.sum(case((in_window, 1), else_=0)).label("done"),
                    func.sum(case((and_(in_window, p.done_at >= recent_since), 1), else_=0)).label("recent"))
             .select_from(per_period.join(chart_sync_schedule, s.chart_id == p.chart_id)).group_by(p.chart_id))
    with engine.connect() as conn:
        return {row.chart_id: PeriodCounts(int(row.failed or 0), int(row.done or 0), int(row.recent or 0))
                for row in conn.execute(query)}


@dataclass(frozen=True)
class PeriodOutcome:
    period: date
    status: str  # of the latest try
    tries: int
    first_stored_at: datetime | None


def period_outcomes(engine: Engine, chart_id: int, first: date | None = None) -> list[PeriodOutcome]:
    """Every period of a chart (from ``first``), oldest first: latest status, tries, first stored."""
    e = chart_sync_execution.c
    ranked = _ranked(e.chart_id == chart_id, e.period.is_not(None), *([e.period >= first] if first else []))
    r = ranked.c
    query = select(r.period, r.status, r.tries, r.first_stored_at).where(r.rn == 1).order_by(r.period)
    with engine.connect() as conn:
        return [PeriodOutcome(row.period, row.status, int(row.tries),
                              as_utc(row.first_stored_at) if row.first_stored_at is not None else None)
                for row in conn.execute(query)]


# -- the fleet by period -------------------------------------------------------------------------------
@dataclass(frozen=True)
class PeriodFigures:
    """The periods of one date synced by the charts of one publication frequency (the chart's own):
    how many were stored, skipped by the API (never stored) or only failed, and when they were stored."""

    period: date
    chart_frequency: str | None
    stored: int = 0
    skipped: int = 0
    failed: int = 0
    mean_stored_epoch: float | None = None  # mean first successful finish, seconds since 1970


def fleet_period_figures(engine: Engine, first: date, last: date) -> list[PeriodFigures]:
    """Per period date and chart frequency (periods from ``first`` to ``last``): the periods' outcomes
    and the mean time they were first stored; two GROUP BYs, no window (every chart's executions)."""
    e = chart_sync_execution.c

    def seen(status: str):
        return func.max(case((e.status == status, 1), else_=0))

    per_period = (select(e.chart_id, e.period, seen(SUCCESS).label("ok"), seen(SKIPPED).label("skipped"),
                         func.min(case((e.status == SUCCESS, e.completed_at))).label("stored_at"))
                  # a period's tries start once it has begun: the started_at index narrows short windows
                  .where(e.period >= first, e.period <= last, e.started_at >= midnight(first))
                  .group_by(e.chart_id, e.period).subquery("per_period"))
    p = per_period.c
    query = (select(p.period, chart.c.frequency, func.sum(p.ok).label("stored"),
                    func.sum(case((and_(p.ok == 0, p.skipped == 1), 1), else_=0)).label("skipped"),
                    func.sum(case((and_(p.ok == 0, p.skipped == 0), 1), else_=0)).label("failed"),
                    func.avg(epoch(p.stored_at)).label("stored_epoch"))
             .select_from(per_period.join(chart, chart.c.id == p.chart_id))
             .group_by(p.period, chart.c.frequency).order_by(p.period))
    with engine.connect() as conn:
        return [PeriodFigures(row.period, row.frequency, int(row.stored or 0), int(row.skipped or 0),
                              int(row.failed or 0), float(row.stored_epoch) if row.stored_epoch is not None else None)
                for row in conn.execute(query)]


def schedule_calendars(engine: Engine) -> list:
    """The schedules grouped by what fixes their periods (sync frequency, chart frequency, publication
    weekday, history start), with how many share each: the fleet's expected periods, computed once a group."""
    s = chart_sync_schedule.c
    query = (select(s.sync_frequency, chart.c.frequency.label("chart_frequency"), chart.c.publication_weekday,
                    s.history_start, func.count().label("schedules"))
             .join(chart, chart.c.id == s.chart_id)
             .group_by(s.sync_frequency, chart.c.frequency, chart.c.publication_weekday, s.history_start))
    with engine.connect() as conn:
        return conn.execute(query).all()
