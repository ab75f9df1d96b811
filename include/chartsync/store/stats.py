"""Execution statistics in SQL: "last success" (defined once, here), the overdue rule's SQL twin,
and the GROUP BY aggregates, so a page of schedules or the whole fleet costs a fixed number of
queries however many schedules there are. The pure rules are ``core.rules`` and ``core.calendar``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine, Float, and_, case, func, literal, select, true
from sqlalchemy.sql.expression import ColumnElement

from chartsync.store.dialect import dialect_function
from chartsync.store.tables import chart_sync_execution, chart_sync_schedule
from chartsync.core.calendar import FALLBACK_GRACE, INTERVAL_GRACE_FACTOR, OVERDUE_GRACE, Frequency, overdue_after
from chartsync.core.outcomes import FAILED, SKIPPED, SUCCESS
from chartsync.core.rules import freshness_seconds, success_rate
from chartsync.core.timestamps import as_utc

# -- the same rule in SQL ---------------------------------------------------------------------------
epoch = dialect_function("epoch", Float(), "EXTRACT(EPOCH FROM {})", "CAST(strftime('%s', {}) AS REAL)",
                         "Seconds since 1970 of a timestamp column, on SQLite and PostgreSQL.")


def cron_graces(conn: Connection) -> dict[str, int]:
    """Grace seconds of every cron expression in use (few distinct ones), for ``overdue_clause``."""
    expressions = conn.execute(
        select(chart_sync_schedule.c.cron_expression).distinct().where(
            chart_sync_schedule.c.sync_frequency == Frequency.CRON.value,
            chart_sync_schedule.c.cron_expression.is_not(None))
    ).scalars()
    return {e: int(overdue_after(Frequency.CRON.value, cron_expression=e).total_seconds()) for e in expressions}


def grace_seconds(schedule=chart_sync_schedule, cron: dict[str, int] | None = None) -> ColumnElement:
    s = schedule.c
    whens = [(s.sync_frequency == f.value, int(g.total_seconds())) for f, g in OVERDUE_GRACE.items()]
    whens.append((and_(s.sync_frequency == Frequency.CUSTOM.value, s.custom_interval_hours > 0),
                  s.custom_interval_hours * 3600 * INTERVAL_GRACE_FACTOR))
    whens += [(and_(s.sync_frequency == Frequency.CRON.value, s.cron_expression == expr), seconds)
              for expr, seconds in (cron or {}).items()]
    return case(*whens, else_=int(FALLBACK_GRACE.total_seconds()))


def _finished_at() -> ColumnElement:
    """When an execution ended (its start, for a row written before completion was known)."""
    e = chart_sync_execution.c
    return func.coalesce(e.completed_at, e.started_at)


def last_success_subquery():
    """chart_id -> completion time of its newest successful execution (GROUP BY)."""
    e = chart_sync_execution.c
    return (
        select(e.chart_id, func.max(_finished_at()).label("last_success_at"))
        .where(e.status == SUCCESS).group_by(e.chart_id).subquery("last_success")
    )


def overdue_clause(last_success_at: ColumnElement, now: datetime, cron: dict[str, int],
                   schedule=chart_sync_schedule) -> ColumnElement:
    """SQL twin of ``is_overdue`` (tests check they agree)."""
    reference = func.coalesce(last_success_at, schedule.c.created_at)
    return and_(
        schedule.c.is_active.is_(True),
        epoch(reference) < literal(as_utc(now).timestamp()) - grace_seconds(schedule, cron),
    )


# -- aggregates --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ExecutionStats:
    total_executions: int = 0
    successful_executions: int = 0
    failed_executions: int = 0
    skipped_executions: int = 0
    success_rate: float | None = None
    average_duration_seconds: float | None = None
    last_execution_at: datetime | None = None
    last_status: str | None = None
    last_error: str | None = None
    last_success_at: datetime | None = None
    freshness_seconds: float | None = None


def _aggregates(since: datetime | None) -> list:
    """Counts and mean duration over the window; the newest success over all time (freshness)."""
    e = chart_sync_execution.c
    in_window = e.started_at >= since if since is not None else true()

    def count(status: str | None = None):
        condition = in_window if status is None else and_(in_window, e.status == status)
        return func.sum(case((condition, 1), else_=0))

    return [
        count().label("total"), count(SUCCESS).label("ok"), count(FAILED).label("failed"),
        count(SKIPPED).label("skipped"), func.avg(case((in_window, e.duration_seconds))).label("avg_duration"),
        func.max(case((e.status == SUCCESS, _finished_at()))).label("last_ok"),  # last success, as above
        func.max(e.started_at).label("last_started"),
    ]


def _stats(r, now: datetime, latest=None) -> ExecutionStats:
    ok, failed = int(r.ok or 0), int(r.failed or 0)
    last_ok = as_utc(r.last_ok) if r.last_ok is not None else None
    return ExecutionStats(
        total_executions=int(r.total or 0), successful_executions=ok, failed_executions=failed,
        skipped_executions=int(r.skipped or 0), success_rate=success_rate(ok, failed),
        average_duration_seconds=_round(r.avg_duration),
        last_execution_at=as_utc(r.last_started) if r.last_started is not None else None,
        last_status=latest.status if latest is not None else None,
        last_error=latest.error if latest is not None else None,
        last_success_at=last_ok, freshness_seconds=freshness_seconds(last_ok, now),
    )


def execution_stats(engine: Engine, chart_ids: Sequence[int] | None = None, *, since: datetime | None = None,
                    now: datetime | None = None) -> dict[int, ExecutionStats]:
    """Per chart: counts, success rate and mean duration (since ``since``), latest execution and
    freshness (all time); two GROUP BY queries."""
    if chart_ids is not None and not chart_ids:
        return {}
    now = now or datetime.now(UTC)
    e = chart_sync_execution.c
    charts = [e.chart_id.in_(list(chart_ids))] if chart_ids is not None else []
    totals = select(e.chart_id, *_aggregates(since)).where(*charts).group_by(e.chart_id)
    ranked = select(e.chart_id, e.status, e.error, func.row_number().over(
        partition_by=e.chart_id, order_by=(e.started_at.desc(), e.id.desc())).label("rn")).where(*charts).subquery()
    latest = select(ranked.c.chart_id, ranked.c.status, ranked.c.error).where(ranked.c.rn == 1)
    with engine.connect() as conn:
        last = {r.chart_id: r for r in conn.execute(latest)}
        return {r.chart_id: _stats(r, now, last.get(r.chart_id)) for r in conn.execute(totals)}


@dataclass(frozen=True)
class OverallStats:
    schedules: int
    active_schedules: int
    overdue_schedules: int
    executions: ExecutionStats
    window_start: datetime | None


def overall_stats(engine: Engine, *, since: datetime | None = None, now: datetime | None = None) -> OverallStats:
    """The whole fleet in two aggregate queries: schedules (active/overdue) and executions."""
    now = now or datetime.now(UTC)
    s = chart_sync_schedule.c
    with engine.connect() as conn:
        last_ok = last_success_subquery()
        overdue = overdue_clause(last_ok.c.last_success_at, now, cron_graces(conn))
        counts = conn.execute(
            select(func.count(), func.sum(case((s.is_active.is_(True), 1), else_=0)),
                   func.sum(case((overdue, 1), else_=0)))
            .select_from(chart_sync_schedule.outerjoin(last_ok, last_ok.c.chart_id == s.chart_id))
        ).one()
        r = conn.execute(select(*_aggregates(since))).one()
    executions = _stats(r, now)
    return OverallStats(int(counts[0]), int(counts[1] or 0), int(counts[2] or 0), executions, since)


def recent_executions(engine: Engine, chart_id: int, limit: int = 20) -> list[dict]:
    """The newest execution rows of a chart (uses the (chart_id, started_at) index)."""
    e = chart_sync_execution.c
    query = select(chart_sync_execution).where(e.chart_id == chart_id).order_by(
        e.started_at.desc(), e.id.desc()).limit(limit)
    with engine.connect() as conn:
        return [_with_aware_times(dict(r._mapping)) for r in conn.execute(query)]


def _with_aware_times(row: dict) -> dict:
    return {k: as_utc(v) if isinstance(v, datetime) else v for k, v in row.items()}


def _round(value) -> float | None:
    return round(float(value), 3) if value is not None else None

