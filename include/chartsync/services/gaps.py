"""Complete history: expected periods, gap detection, coverage, and healing through backfills.

Expected periods of a chart's history window come from two sources, both kept in
``chart_expected_period``: the calendar of its frequency, and the API's available rankings.
The API's list wins where they differ (a weekly chart published on Fridays, a skipped holiday
week); the difference is reported in ``chart_sync_coverage``. Gap detection is set-based:
expected minus stored periods, merged into contiguous ranges, in one SQL statement for all
charts. Healing creates one Airflow backfill per chart DAG over its gap ranges.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime

from sqlalchemy import Engine, and_, delete, func, insert, select

from chartsync.core import calendar as freqs
from chartsync.store.tables import (
    chart,
    chart_expected_period,
    chart_ranking,
    chart_sync_coverage,
    chart_sync_gap,
    chart_sync_schedule,
)
from chartsync.services.schedules import ScheduleConfig, dag_id_for

log = logging.getLogger(__name__)
REPROCESS = "completed"  # a run that succeeded but left no data (rows deleted later) must run again


@dataclass(frozen=True)
class GapRange:
    chart_id: int
    slug: str
    start: date
    end: date
    periods: int

    @property
    def dag_id(self) -> str:
        return dag_id_for(self.slug)

    @property
    def backfill_command(self) -> str:
        return (f"airflow backfill create --dag-id {self.dag_id} --from-date {self.start} "
                f"--to-date {self.end} --reprocess-behavior {REPROCESS}")


@dataclass(frozen=True)
class PeriodSources:
    """What the calendar and the API say about one chart's window."""

    chart_id: int
    slug: str
    window: tuple[date, date]
    calendar: frozenset[date]
    api: frozenset[date] | None  # None: the API could not be asked

    @property
    def expected(self) -> frozenset[date]:
        return self.api if self.api else self.calendar

    @property
    def calendar_only(self) -> list[date]:
        return sorted(self.calendar - self.api) if self.api else []

    @property
    def api_only(self) -> list[date]:
        return sorted(self.api - self.calendar) if self.api else []


@dataclass(frozen=True)
class HealResult:
    slug: str
    dag_id: str
    start: date | None
    end: date | None
    status: str  # created, already-running, nothing-to-heal, dag-not-parsed, unsupported
    backfill_id: int | None
    message: str


def history_window(config: ScheduleConfig, today: date) -> tuple[date, date]:
    """[first, last] period starts a schedule is responsible for, as of ``today``."""
    calendar = config.period_frequency
    last = freqs.latest_complete_period(calendar, datetime.combine(today, datetime.min.time(), UTC),
                                        config.weekday).start
    first = config.history_start if config.sync_historical_data else freqs.align(
        calendar, config.created_on, config.weekday)
    return first, last


def period_sources(config: ScheduleConfig, api_dates: list[str] | None, today: date) -> PeriodSources:
    first, last = history_window(config, today)
    calendar = frozenset(p.start for p in freqs.periods_between(config.period_frequency, first, last, config.weekday))
    api = None
    if api_dates is not None:
        api = frozenset(d for d in (date.fromisoformat(a[:10]) for a in api_dates) if first <= d <= last)
    return PeriodSources(config.chart_id, config.slug, (first, last), calendar, api)


def refresh_expected_periods(engine: Engine, client, configs: list[ScheduleConfig],
                             today: date | None = None) -> list[PeriodSources]:
    """Ask the API for each chart's published periods and store both sources (API calls per chart)."""
    from chartsync.soundcharts.client import SoundchartsError

    today = today or datetime.now(UTC).date()
    now = datetime.now(UTC)
    results = []
    for config in configs:
        try:
            api_dates = client.available_rankings(config.slug)
        except SoundchartsError as exc:
            log.warning("%s: available rankings unavailable (%s); using the calendar", config.slug, exc)
            api_dates = None
        sources = period_sources(config, api_dates, today)
        rows = [
            {"chart_id": config.chart_id, "period": day, "in_calendar": day in sources.calendar,
             "in_api": bool(sources.api) and day in sources.api, "expected": day in sources.expected,
             "refreshed_at": now}
            for day in sorted(sources.calendar | (sources.api or frozenset()))
        ]
        with engine.begin() as conn:
            if api_dates is None and conn.execute(select(func.count()).select_from(chart_expected_period).where(
                    chart_expected_period.c.chart_id == config.chart_id)).scalar():
                continue  # keep what the API told us last time
            conn.execute(delete(chart_expected_period).where(chart_expected_period.c.chart_id == config.chart_id))
            if rows:
                conn.execute(insert(chart_expected_period), rows)
        if sources.calendar_only or sources.api_only:
            log.info("%s: the API differs from the calendar: not published %s, off-calendar %s", config.slug,
                     [d.isoformat() for d in sources.calendar_only], [d.isoformat() for d in sources.api_only])
        results.append(sources)
    return results


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


def detect_gaps(engine: Engine, today: date | None = None) -> list[GapRange]:
    """Recompute gap ranges and coverage for every active schedule and store them."""
    today = today or datetime.now(UTC).date()
    now = datetime.now(UTC)
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
    return list_gaps(engine)


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


def heal(engine: Engine, slugs: list[str] | None, user: str) -> list[HealResult]:
    """One backfill per chart DAG over its gap ranges (Airflow allows one active backfill per DAG)."""
    from chartsync.seam import orchestration
    from chartsync.services.schedules import load_rows

    by_slug: dict[str, list[GapRange]] = {}
    for gap in list_gaps(engine):
        if slugs is None or gap.slug in slugs:
            by_slug.setdefault(gap.slug, []).append(gap)
    configs = {row.slug: row for row in load_rows(engine)}
    results = []
    for slug in sorted(set(slugs or []) | set(by_slug)):
        ranges = by_slug.get(slug, [])
        dag_id = dag_id_for(slug)
        if not ranges:
            results.append(HealResult(slug, dag_id, None, None, "nothing-to-heal", None, "no gaps recorded"))
            continue
        start, end = ranges[0].start, ranges[-1].end
        row = configs.get(slug)
        if row is None or row.sync_frequency not in ("daily", "weekly", "monthly"):
            results.append(HealResult(slug, dag_id, start, end, "unsupported", None,
                                      "only daily/weekly/monthly schedules map periods to backfill dates"))
            continue
        active = orchestration.backfills(dag_id, active_only=True)
        if active:
            results.append(HealResult(slug, dag_id, start, end, "already-running", active[0].id,
                                      f"backfill {active[0].id} ({active[0].from_date}..{active[0].to_date}) "
                                      "is still running"))
            continue
        try:
            backfill = orchestration.create_backfill(dag_id, start, end, user, reprocess=REPROCESS)
        except orchestration.DagNotParsedYet as exc:
            results.append(HealResult(slug, dag_id, start, end, "dag-not-parsed", None, str(exc)))
            continue
        except orchestration.BackfillAlreadyRunning as exc:
            results.append(HealResult(slug, dag_id, start, end, "already-running", None, str(exc)))
            continue
        periods = sum(g.periods for g in ranges)
        results.append(HealResult(slug, dag_id, start, end, "created", backfill.id,
                                  f"backfill {backfill.id}: {periods} missing periods in {len(ranges)} "
                                  f"range(s) from {start} to {end}"))
    return results


def heal_audited(engine: Engine, slugs: list[str] | None, actor: str) -> list[HealResult]:
    """``heal``, with an audit row for every backfill Airflow accepted (the admin pages call this)."""
    from dataclasses import asdict

    from chartsync.store import audit

    results = heal(engine, slugs, actor)
    with engine.begin() as conn:
        for result in results:
            if result.status == "created":
                audit.record(conn, actor=actor, action="heal", entity=audit.BACKFILL,
                             entity_id=result.backfill_id, after=asdict(result))
    return results
