"""Read services of the admin pages (plugin ``chart_sync_admin``): what a page lists, sorts and plots.

Every list is one filtered, sorted and paged SQL query; every figure is a GROUP BY in the
database, so a page costs a fixed number of queries however many charts, schedules or
executions there are. Statuses come from the same SQL overdue rule as the REST API
(``store.stats.overdue_clause``); the schedule table's rows are described by
``services.schedules.schedule_table``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import Engine, String, and_, asc, case, desc, func, literal, or_, select
from sqlalchemy.sql.expression import ColumnElement

from chartsync.core.outcomes import FAILED, SKIPPED, SUCCESS
from chartsync.core.paging import Page, PageRequest
from chartsync.core.rules import (
    ACTIVE,
    CHART_STATUSES,
    INACTIVE,
    NOT_SCHEDULED,
    OVERDUE,
    freshness_seconds,
    success_rate,
)
from chartsync.core.schedule import ScheduleError, dag_id_for
from chartsync.core.timestamps import as_utc, midnight
from chartsync.store import gaps, stats
from chartsync.store.dialect import dialect_function
from chartsync.store.tables import (
    chart,
    chart_ranking,
    chart_sync_execution,
    chart_sync_schedule,
)

def _search(pattern: str | None) -> ColumnElement | None:
    if not pattern or not pattern.strip():
        return None
    like = f"%{pattern.strip().lower()}%"
    return or_(func.lower(chart.c.name).like(like), func.lower(chart.c.slug).like(like))


def _status_expression(conn, now: datetime):
    """(status CASE, the last-success subquery it needs): not-scheduled, inactive, overdue, active."""
    s = chart_sync_schedule.c
    last_ok = stats.last_success_subquery()
    overdue = stats.overdue_clause(last_ok.c.last_success_at, now, stats.cron_graces(conn))
    status = case((s.id.is_(None), NOT_SCHEDULED), (s.is_active.is_(False), INACTIVE), (overdue, OVERDUE),
                  else_=ACTIVE)
    return status, last_ok


def platforms(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(select(chart.c.platform).distinct().order_by(chart.c.platform)).scalars())


def chart_names(engine: Engine, chart_ids: list[int]) -> list[str]:
    """'Name (slug)' of each known chart, in slug order: what a confirmation lists."""
    with engine.connect() as conn:
        rows = conn.execute(select(chart.c.name, chart.c.slug).where(chart.c.id.in_(chart_ids))
                            .order_by(chart.c.slug)).all()
    return [f"{r.name} ({r.slug})" for r in rows]


def chart_slugs(engine: Engine, chart_ids: list[int]) -> dict[int, str]:
    """The slug of each known chart: what names its DAG in a result's links."""
    if not chart_ids:
        return {}
    with engine.connect() as conn:
        return dict(conn.execute(select(chart.c.id, chart.c.slug).where(chart.c.id.in_(chart_ids))).all())


# -- the chart catalogue ---------------------------------------------------------------------------
@dataclass(frozen=True)
class ChartRow:
    chart_id: int
    slug: str
    name: str
    platform: str
    country_code: str | None
    chart_frequency: str | None
    schedule_id: int | None
    sync_frequency: str | None
    status: str
    last_success_at: datetime | None
    has_rankings: bool

    @property
    def dag_id(self) -> str | None:
        try:
            return dag_id_for(self.slug)
        except ScheduleError:
            return None


def chart_catalogue(engine: Engine, *, search: str | None = None, platform: str | None = None,
                    status: str | None = None, frequency: str | None = None,
                    paging: PageRequest = PageRequest(), now: datetime | None = None) -> Page:
    """Every chart with its sync status (the schedule's, or not-scheduled), filtered and paged by slug."""
    if status is not None and status not in CHART_STATUSES:
        raise ValueError(f"status must be one of {', '.join(CHART_STATUSES)}")
    now = now or datetime.now(UTC)
    s = chart_sync_schedule.c
    with engine.connect() as conn:
        status_expr, last_ok = _status_expression(conn, now)
        has_rankings = select(chart_ranking.c.id).where(chart_ranking.c.chart_id == chart.c.id).exists()
        query = (
            select(chart.c.id, chart.c.slug, chart.c.name, chart.c.platform, chart.c.country_code,
                   chart.c.frequency, s.id.label("schedule_id"), s.sync_frequency,
                   last_ok.c.last_success_at, status_expr.label("status"), has_rankings.label("has_rankings"))
            .select_from(chart.outerjoin(chart_sync_schedule, s.chart_id == chart.c.id)
                         .outerjoin(last_ok, last_ok.c.chart_id == chart.c.id))
        )
        conditions = [c for c in (
            _search(search),
            chart.c.platform == platform if platform else None,
            or_(s.sync_frequency == frequency, and_(s.id.is_(None), chart.c.frequency == frequency))
            if frequency else None,
            status_expr == status if status else None,
        ) if c is not None]
        counted = chart.outerjoin(chart_sync_schedule, s.chart_id == chart.c.id)
        if status:  # the last-success aggregate only when the status filters
            counted = counted.outerjoin(last_ok, last_ok.c.chart_id == chart.c.id)
        total = conn.execute(select(func.count()).select_from(counted).where(*conditions)).scalar_one()
        rows = conn.execute(query.where(*conditions).order_by(chart.c.slug).limit(paging.limit).offset(paging.offset)).all()
    items = [ChartRow(r.id, r.slug, r.name, r.platform, r.country_code, r.frequency, r.schedule_id,
                      r.sync_frequency, r.status, as_utc(r.last_success_at) if r.last_success_at else None,
                      bool(r.has_rankings)) for r in rows]
    return Page(items, total, paging.limit, paging.offset)


# -- the schedule table ------------------------------------------------------------------------------
SCHEDULE_SORTS = ("chart", "platform", "frequency", "status", "last_sync", "success_rate", "executions",
                  "coverage")


def _execution_totals():
    """chart_id -> all-time counts and newest success (GROUP BY), for sorting the schedule table."""
    e = chart_sync_execution.c

    def count(status: str):
        return func.sum(case((e.status == status, 1), else_=0))

    return (select(e.chart_id, func.count().label("total"), count(SUCCESS).label("ok"),
                   count(FAILED).label("failed"))
            .group_by(e.chart_id).subquery("totals"))


def schedule_ids(engine: Engine, *, search: str | None, platform: str | None, frequency: str | None,
                 status: str | None, sort: str, descending: bool, paging: PageRequest,
                 now: datetime, coverage=None, windows: int = 0) -> tuple[list[int], int]:
    """One page of the schedule table: schedule ids in order and how many match; filtered by status
    and sorted by any column (by coverage: ``coverage`` is the live (chart_id, coverage_percent)
    subquery of ``windows`` windows, ``store.gaps.coverage_subquery``)."""
    if sort not in SCHEDULE_SORTS:
        raise ValueError(f"sort must be one of {', '.join(SCHEDULE_SORTS)}")
    page_size, offset = paging.limit, paging.offset
    s = chart_sync_schedule.c
    with engine.connect() as conn:
        if coverage is not None:
            gaps.plan_for_windows(conn, windows)
        status_expr, last_ok = _status_expression(conn, now)
        totals = _execution_totals()
        rate = totals.c.ok * literal(1.0) / func.nullif(totals.c.ok + totals.c.failed, 0)
        keys = {
            "chart": func.lower(chart.c.name), "platform": chart.c.platform, "frequency": s.sync_frequency,
            "status": status_expr, "last_sync": last_ok.c.last_success_at, "success_rate": rate,
            "executions": func.coalesce(totals.c.total, 0),
            "coverage": coverage.c.coverage_percent if coverage is not None else literal(None),
        }
        conditions = [c for c in (
            _search(search),
            chart.c.platform == platform if platform else None,
            s.sync_frequency == frequency if frequency else None,
            status_expr == status if status else None,
        ) if c is not None]
        # join only the aggregates the filter (count) and the sort (page) use: each is a GROUP BY
        # over all executions
        filtered = chart_sync_schedule.join(chart, chart.c.id == s.chart_id)
        if status:
            filtered = filtered.outerjoin(last_ok, last_ok.c.chart_id == s.chart_id)
        total = conn.execute(select(func.count()).select_from(filtered).where(*conditions)).scalar_one()
        ordered = filtered
        if sort in ("status", "last_sync") and not status:
            ordered = ordered.outerjoin(last_ok, last_ok.c.chart_id == s.chart_id)
        if sort in ("success_rate", "executions"):
            ordered = ordered.outerjoin(totals, totals.c.chart_id == s.chart_id)
        if sort == "coverage" and coverage is not None:
            ordered = ordered.outerjoin(coverage, coverage.c.chart_id == s.chart_id)
        query = select(s.id).select_from(ordered).where(*conditions)
        key = keys[sort]
        # NULLs (never synced, invalid settings) last either way
        order = [key.is_(None), desc(key) if descending else asc(key), chart.c.slug]
        ids = list(conn.execute(query.order_by(*order).limit(page_size).offset(offset)).scalars())
    return ids, total


# -- one run's tries (its history by period: ``store.history``) ----------------------------------------
def run_executions(engine: Engine, dag_id: str, run_id: str) -> list[dict]:
    """Every try one Airflow run recorded, oldest first: the run's tab in the Airflow UI."""
    e = chart_sync_execution.c
    with engine.connect() as conn:
        rows = conn.execute(select(chart_sync_execution).where(e.dag_id == dag_id, e.run_id == run_id)
                            .order_by(e.try_number, e.started_at, e.id)).all()
    return [{k: as_utc(v) if isinstance(v, datetime) else v for k, v in r._mapping.items()} for r in rows]


# -- the stats page: aggregates over time ----------------------------------------------------------------
utc_day = dialect_function("utc_day", String(), "to_char({} AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
                           "date({})",  # SQLite stores UTC text
                           "The UTC calendar day of a timestamp as 'YYYY-MM-DD', on SQLite and PostgreSQL.")


@dataclass(frozen=True)
class DayStats:
    day: date
    executions: int = 0
    successful: int = 0
    failed: int = 0
    skipped: int = 0
    average_duration_seconds: float | None = None

    @property
    def success_rate(self) -> float | None:
        return success_rate(self.successful, self.failed)


def daily_stats(engine: Engine, days: int = 30, *, now: datetime | None = None) -> list[DayStats]:
    """Executions per UTC day of the last ``days`` days (every day, zeros included): counts by
    status and mean duration, one GROUP BY."""
    now = now or datetime.now(UTC)
    first = now.date() - timedelta(days=days - 1)
    e = chart_sync_execution.c
    day = utc_day(e.started_at)

    def count(status: str):
        return func.sum(case((e.status == status, 1), else_=0))

    query = (select(day.label("day"), func.count().label("n"), count(SUCCESS).label("ok"),
                    count(FAILED).label("failed"), count(SKIPPED).label("skipped"),
                    func.avg(e.duration_seconds).label("avg"))
             .where(e.started_at >= midnight(first)).group_by(day))
    with engine.connect() as conn:
        found = {date.fromisoformat(r.day): r for r in conn.execute(query)}
    result = []
    for i in range(days):
        d = first + timedelta(days=i)
        r = found.get(d)
        result.append(DayStats(d) if r is None else DayStats(
            d, int(r.n), int(r.ok or 0), int(r.failed or 0), int(r.skipped or 0),
            round(float(r.avg), 3) if r.avg is not None else None))
    return result


@dataclass(frozen=True)
class ChartFigure:
    schedule_id: int
    chart_id: int
    slug: str
    name: str
    value: float | None  # seconds
    executions: int = 0


def stalest_schedules(engine: Engine, limit: int = 15, *, now: datetime | None = None) -> list[ChartFigure]:
    """Active schedules by freshness (time since the last successful sync), stalest first; never
    synced ones (value None) lead."""
    now = now or datetime.now(UTC)
    s = chart_sync_schedule.c
    last_ok = stats.last_success_subquery()
    query = (select(s.id, chart.c.id.label("chart_id"), chart.c.slug, chart.c.name, last_ok.c.last_success_at)
             .select_from(chart_sync_schedule.join(chart, chart.c.id == s.chart_id)
                          .outerjoin(last_ok, last_ok.c.chart_id == s.chart_id))
             .where(s.is_active.is_(True))
             .order_by(last_ok.c.last_success_at.is_not(None), last_ok.c.last_success_at, chart.c.slug)
             .limit(limit))
    with engine.connect() as conn:
        return [ChartFigure(r.id, r.chart_id, r.slug, r.name, freshness_seconds(r.last_success_at, now))
                for r in conn.execute(query)]


FRESHNESS_BUCKETS = (("under 1 day", timedelta(days=1)), ("1-2 days", timedelta(days=2)),
                     ("2-7 days", timedelta(days=7)), ("7-31 days", timedelta(days=31)),
                     ("over 31 days", None))


def freshness_distribution(engine: Engine, *, now: datetime | None = None) -> list[tuple[str, int]]:
    """How many active schedules fall in each freshness bucket (plus 'never synced'): one GROUP BY."""
    now = now or datetime.now(UTC)
    s = chart_sync_schedule.c
    last_ok = stats.last_success_subquery()
    age = literal(as_utc(now).timestamp()) - stats.epoch(last_ok.c.last_success_at)
    whens = [(last_ok.c.last_success_at.is_(None), "never synced")]
    whens += [(age < limit.total_seconds(), label) for label, limit in FRESHNESS_BUCKETS if limit is not None]
    bucket = case(*whens, else_=FRESHNESS_BUCKETS[-1][0])
    query = (select(bucket.label("bucket"), func.count()).select_from(
        chart_sync_schedule.outerjoin(last_ok, last_ok.c.chart_id == s.chart_id))
        .where(s.is_active.is_(True)).group_by(bucket))
    with engine.connect() as conn:
        counts = dict(conn.execute(query).all())
    return [(label, int(counts.get(label, 0))) for label, _ in FRESHNESS_BUCKETS] + [
        ("never synced", int(counts.get("never synced", 0)))]


def slowest_charts(engine: Engine, days: int = 30, limit: int = 15, *,
                   now: datetime | None = None) -> list[ChartFigure]:
    """Scheduled charts by mean execution duration over the last ``days`` days, slowest first."""
    now = now or datetime.now(UTC)
    e, s = chart_sync_execution.c, chart_sync_schedule.c
    mean = func.avg(e.duration_seconds)
    per_chart = (select(e.chart_id, mean.label("mean"), func.count().label("n"))
                 .where(e.started_at >= now - timedelta(days=days), e.duration_seconds.is_not(None))
                 .group_by(e.chart_id).order_by(mean.desc()).limit(limit).subquery())
    query = (select(s.id, chart.c.id.label("chart_id"), chart.c.slug, chart.c.name, per_chart.c.mean,
                    per_chart.c.n)
             .select_from(per_chart.join(chart, chart.c.id == per_chart.c.chart_id)
                          .join(chart_sync_schedule, s.chart_id == chart.c.id))
             .order_by(per_chart.c.mean.desc(), chart.c.slug))
    with engine.connect() as conn:
        return [ChartFigure(r.id, r.chart_id, r.slug, r.name, round(float(r.mean), 3), int(r.n))
                for r in conn.execute(query)]
