"""Expected periods, gap ranges and coverage in SQL: ``chart_expected_period``, ``chart_sync_gap``,
``chart_sync_coverage``. Gap detection is set-based: expected minus stored periods, merged into
contiguous ranges, in one statement for all charts."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Engine, and_, delete, func, insert, select

from chartsync.core.gaps import GapRange
from chartsync.core.outcomes import FAILED
from chartsync.store.tables import (
    chart,
    chart_expected_period,
    chart_ranking,
    chart_sync_coverage,
    chart_sync_gap,
    chart_sync_execution,
    chart_sync_schedule,
)


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


def _expected_cte(today: date):
    e, s = chart_expected_period, chart_sync_schedule
    return (
        select(e.c.chart_id, e.c.period,
               func.row_number().over(partition_by=e.c.chart_id, order_by=e.c.period).label("rn_all"))
        .join(s, s.c.chart_id == e.c.chart_id)
        .where(e.c.expected.is_(True), s.c.is_active.is_(True), e.c.period <= today)
        .cte("expected")
    )


def gap_query(today: date):
    """Expected minus stored periods, merged into ranges: one statement for every chart.

    Gaps-and-islands: among a chart's expected periods numbered in order (rn_all), the missing
    ones numbered again (rn_missing) keep a constant rn_all - rn_missing within a contiguous run.
    """
    expected = _expected_cte(today)
    r = chart_ranking
    missing = (
        select(expected.c.chart_id, expected.c.period, expected.c.rn_all,
               func.row_number().over(partition_by=expected.c.chart_id, order_by=expected.c.period)
               .label("rn_missing"))
        .select_from(expected.outerjoin(r, and_(r.c.chart_id == expected.c.chart_id,
                                                r.c.period == expected.c.period)))
        .where(r.c.id.is_(None))
        .cte("missing")
    )
    island = (missing.c.rn_all - missing.c.rn_missing).label("island")
    return (
        select(missing.c.chart_id, func.min(missing.c.period).label("start"),
               func.max(missing.c.period).label("end"), func.count().label("periods"))
        .group_by(missing.c.chart_id, island)
        .order_by(missing.c.chart_id, func.min(missing.c.period))
    )


def coverage_query(today: date):
    expected = _expected_cte(today)
    r = chart_ranking
    return (
        select(expected.c.chart_id, func.min(expected.c.period).label("first"),
               func.max(expected.c.period).label("last"), func.count().label("expected"),
               func.count(r.c.id).label("stored"))
        .select_from(expected.outerjoin(r, and_(r.c.chart_id == expected.c.chart_id,
                                                r.c.period == expected.c.period)))
        .group_by(expected.c.chart_id)
    )


def replace_gaps_and_coverage(engine: Engine, today: date, now: datetime) -> None:
    """Recompute gap ranges and coverage for every active schedule and store them (one transaction)."""
    e = chart_expected_period
    with engine.begin() as conn:
        ranges = conn.execute(gap_query(today)).all()
        coverage = conn.execute(coverage_query(today)).all()
        differences: dict[int, dict[str, list[str]]] = {}
        for row in conn.execute(select(e.c.chart_id, e.c.period, e.c.in_calendar, e.c.in_api)
                                .where(e.c.in_calendar != e.c.in_api, e.c.period <= today)):
            key = "calendar_only" if row.in_calendar else "api_only"
            differences.setdefault(row.chart_id, {"calendar_only": [], "api_only": []})[key].append(
                row.period.isoformat())
        conn.execute(delete(chart_sync_gap))
        if ranges:
            conn.execute(insert(chart_sync_gap), [
                {"chart_id": g.chart_id, "start_period": g.start, "end_period": g.end, "period_count": g.periods,
                 "detected_at": now} for g in ranges])
        conn.execute(delete(chart_sync_coverage))
        if coverage:
            conn.execute(insert(chart_sync_coverage), [
                {"chart_id": c.chart_id, "window_start": c.first, "window_end": c.last,
                 "expected_periods": c.expected, "stored_periods": c.stored,
                 "coverage_percent": round(100.0 * c.stored / c.expected, 2) if c.expected else 100.0,
                 "calendar_only": differences.get(c.chart_id, {}).get("calendar_only", []),
                 "api_only": differences.get(c.chart_id, {}).get("api_only", []),
                 "audited_at": now} for c in coverage])


def list_gaps(engine: Engine, chart_id: int | None = None, slug: str | None = None) -> list[GapRange]:
    g = chart_sync_gap
    query = (select(g.c.chart_id, chart.c.slug, g.c.start_period, g.c.end_period, g.c.period_count)
             .join(chart, chart.c.id == g.c.chart_id).order_by(chart.c.slug, g.c.start_period))
    if chart_id is not None:
        query = query.where(g.c.chart_id == chart_id)
    if slug is not None:
        query = query.where(chart.c.slug == slug)
    with engine.connect() as conn:
        return [GapRange(r.chart_id, r.slug, r.start_period, r.end_period, r.period_count)
                for r in conn.execute(query)]




def period_facts(engine: Engine, chart_id: int) -> tuple[set[date], list, dict[date, str | None]]:
    """What the coverage strip needs of one chart: stored periods, (period, in_api) rows of the
    expected periods, and the error of each failed period."""
    e, r, x = chart_expected_period, chart_ranking, chart_sync_execution
    with engine.connect() as conn:
        stored = set(conn.execute(select(r.c.period).where(r.c.chart_id == chart_id)).scalars())
        api_rows = conn.execute(select(e.c.period, e.c.in_api).where(e.c.chart_id == chart_id)).all()
        failures = {row.period: row.error for row in conn.execute(
            select(x.c.period, x.c.error).where(x.c.chart_id == chart_id, x.c.status == FAILED,
                                                x.c.period.is_not(None)).order_by(x.c.started_at))}
    return stored, api_rows, failures
