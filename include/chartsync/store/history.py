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

from sqlalchemy import Engine, String, and_, case, distinct, func, or_, select

from chartsync.core.outcomes import EXECUTION_STATUSES, FAILED, SKIPPED, SUCCESS
from chartsync.core.paging import Page, PageRequest
from chartsync.core.timestamps import as_utc
from chartsync.store.stats import epoch
from chartsync.store.tables import chart, chart_ranking, chart_sync_execution, chart_sync_schedule

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
    recent: int = 0  # periods of the window a try stored or skipped since ``recent_since`` (the rate)


def period_counts(engine: Engine, chart_ids: Sequence[int], recent_since: datetime) -> dict[int, PeriodCounts]:
    """Per chart, its failed periods and its catchup's periods done, without sorting every execution:
    stored rankings of the window counted on their index, then the few failed and skipped tries and the
    recent ones (a failed try is its period's latest when no later try of the period exists)."""
    if not chart_ids:
        return {}
    ids = list(chart_ids)
    e, s, rk = chart_sync_execution.c, chart_sync_schedule.c, chart_ranking.c
    other = chart_sync_execution.alias("other").c
    same_group = or_(other.period == e.period, and_(e.period.is_(None), other.period.is_(None), other.run_id == e.run_id))
    later = or_(other.started_at > e.started_at, and_(other.started_at == e.started_at, other.id > e.id))
    latest = ~select(other.id).where(other.chart_id == e.chart_id, same_group, later).exists()
    ranked = select(rk.id).where(rk.chart_id == e.chart_id, rk.period == e.period).exists()
    in_window = e.period >= s.history_start
    recent = e.started_at >= recent_since

    def periods(condition):
        return func.count(distinct(case((condition, e.period))))

    tries = (select(e.chart_id,
                    func.count(distinct(case((and_(e.status == FAILED, latest), _group_key(e))))).label("failed"),
                    periods(and_(e.status == SKIPPED, in_window, ~ranked)).label("skipped"),
                    periods(and_(recent, e.status.in_((SUCCESS, SKIPPED)), in_window)).label("recent"))
             .join(chart_sync_schedule, s.chart_id == e.chart_id)
             .where(e.chart_id.in_(ids), or_(e.status.in_((FAILED, SKIPPED)), recent)).group_by(e.chart_id))
    stored = (select(rk.chart_id, func.count()).join(chart_sync_schedule, s.chart_id == rk.chart_id)
              .where(rk.chart_id.in_(ids), rk.period >= s.history_start).group_by(rk.chart_id))
    with engine.connect() as conn:
        found = dict(conn.execute(stored).all())
        counts = {chart_id: PeriodCounts(done=int(n)) for chart_id, n in found.items()}
        for row in conn.execute(tries):
            counts[row.chart_id] = PeriodCounts(int(row.failed), int(found.get(row.chart_id, 0)) + int(row.skipped),
                                                int(row.recent))
    return counts


def _group_key(e):
    """One value per period group (see ``_group``) for COUNT(DISTINCT ...): the period, else the run."""
    return func.coalesce(func.cast(e.period, String), e.run_id)


@dataclass(frozen=True)
class PeriodOutcome:
    period: date
    status: str  # of the latest try
    tries: int
    stored_at: datetime | None  # when its stored ranking was written (None: not stored)


def period_outcomes(engine: Engine, chart_id: int, first: date | None = None) -> list[PeriodOutcome]:
    """Every period of a chart (from ``first``) that was tried, oldest first: latest status, tries, and
    when its ranking was stored."""
    e, rk = chart_sync_execution.c, chart_ranking.c
    ranked = _ranked(e.chart_id == chart_id, e.period.is_not(None), *([e.period >= first] if first else []))
    r = ranked.c
    query = (select(r.period, r.status, r.tries, rk.fetched_at)
             .select_from(ranked.outerjoin(chart_ranking, and_(rk.chart_id == r.chart_id, rk.period == r.period)))
             .where(r.rn == 1).order_by(r.period))
    with engine.connect() as conn:
        return [PeriodOutcome(row.period, row.status, int(row.tries),
                              as_utc(row.fetched_at) if row.fetched_at is not None else None)
                for row in conn.execute(query)]


# -- the fleet by period -------------------------------------------------------------------------------
@dataclass(frozen=True)
class PeriodFigures:
    """The periods of one date of the charts of one publication frequency (the chart's own): how many
    are stored (and when, on average), how many were tried and never stored: skipped by the API, failed."""

    period: date
    chart_frequency: str | None
    stored: int = 0
    skipped: int = 0
    failed: int = 0
    mean_stored_epoch: float | None = None  # mean time the stored rankings were written, seconds since 1970


def fleet_period_figures(engine: Engine, first: date, last: date) -> list[PeriodFigures]:
    """Per period date and chart frequency (periods from ``first`` to ``last``) of the scheduled charts:
    stored rankings (one GROUP BY over the rankings), and the tried periods never stored (the failed and
    skipped tries without a ranking: a few rows, found without sorting every execution)."""
    rk, e, s = chart_ranking.c, chart_sync_execution.c, chart_sync_schedule.c
    stored = (select(rk.period, chart.c.frequency, func.count().label("n"),
                     func.avg(epoch(rk.fetched_at)).label("stored_epoch"))
              .select_from(chart_ranking.join(chart_sync_schedule, s.chart_id == rk.chart_id)
                           .join(chart, chart.c.id == rk.chart_id))
              .where(rk.period >= first, rk.period <= last, rk.period >= s.history_start)
              .group_by(rk.period, chart.c.frequency))
    ranking = select(rk.id).where(rk.chart_id == e.chart_id, rk.period == e.period).exists()
    other = chart_sync_execution.alias("other").c
    skipped_too = select(other.id).where(other.chart_id == e.chart_id, other.period == e.period,
                                         other.status == SKIPPED).exists()
    outcome = case((e.status == SKIPPED, SKIPPED), else_=FAILED)
    never_stored = (select(e.period, chart.c.frequency, outcome.label("outcome"),
                           func.count(distinct(e.chart_id)).label("n"))
                    .join(chart, chart.c.id == e.chart_id)
                    .where(e.status.in_((FAILED, SKIPPED)), e.period >= first, e.period <= last, ~ranking,
                           or_(e.status == SKIPPED, ~skipped_too))
                    .group_by(e.period, chart.c.frequency, outcome))
    figures: dict[tuple, dict] = {}
    with engine.connect() as conn:
        for row in conn.execute(stored):
            figures[(row.period, row.frequency)] = {"stored": int(row.n), "mean_stored_epoch": float(row.stored_epoch)}
        for row in conn.execute(never_stored):
            figures.setdefault((row.period, row.frequency), {})[row.outcome] = int(row.n)
    return [PeriodFigures(period, frequency, **values)
            for (period, frequency), values in sorted(figures.items(), key=lambda kv: (kv[0][0], kv[0][1] or ""))]


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
