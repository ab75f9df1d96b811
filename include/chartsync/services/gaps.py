"""Complete history: expected periods, live gaps and coverage, and exact healing through backfills.

Expected periods, gaps and coverage have one definition each (``core.gaps``). The gap audit (the
DAG ``chart_sync_gap_audit`` and ``chartsync gaps audit``) only refreshes what the API published
(``refresh_expected_periods``); gaps and coverage are computed when a door shows them, in one
statement over every chart asked for (``store.gaps.runs_query``).

A gap is a missing period behind the DAG's catchup front (``orchestration.catchup_fronts``: Airflow's next
scheduled run); the missing periods from the front on wait for the catchup
(``GapReport.waiting``) and no heal touches them, so a heal never races the scheduler for a run.

Healing backfills exactly the gap ranges: one Airflow backfill per range with reprocess behaviour
``failed`` (a successful run is never re-run by it, nor turned into a backfill run); a period whose
run succeeded but whose rankings were deleted later has that run cleared, so it runs again as the
run it is. Airflow allows one active backfill per DAG, so the first range starts and the others wait in
``chart_sync_heal`` (all of them, when another backfill runs already); ``advance_heals`` (the plugin's
scheduler listener) starts each when the one before completed. Each chart's heal is its own result.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, fields, replace
from datetime import UTC, date, datetime

from sqlalchemy import Engine

from chartsync.core.gaps import (
    BACKFILL_FREQUENCIES,
    REPROCESS,
    CatchupWait,
    Coverage,
    GapRange,
    PeriodSources,
    Window,
    coverage_of,
    gaps_of,
    history_window,
    period_sources,
    split_at_front,
    window_of,
)
from chartsync.core.gaps import HealResult as BareHealResult
from chartsync.core.quota import Estimate
from chartsync.core.schedule import ScheduleConfig, ScheduleError, ScheduleNotFound, dag_id_for
from chartsync.seam import metrics, orchestration
from chartsync.services import budget
from chartsync.soundcharts.errors import SoundchartsError
from chartsync.store import audit
from chartsync.store import gaps as gap_store
from chartsync.store import heals as heal_store
from chartsync.store.charts import get_chart
from chartsync.store.schedules import load_rows, row_of_chart
from chartsync.store.stats import execution_stats

__all__ = ["CatchupWait", "Coverage", "GapRange", "GapReport", "HealResult", "PeriodSources", "advance_heals",
           "coverages", "gap_report", "heal", "heal_estimate", "history_window", "list_gaps", "period_sources",
           "refresh_expected_periods", "send_chart_gauges", "windows"]

log = logging.getLogger(__name__)
COSTING = ("created", "already-running")  # heal statuses whose ranges Airflow runs, now or queued


@dataclass(frozen=True)
class HealResult(BareHealResult):
    """A chart's heal, with what it costs: its gap periods (backfilled now or queued) x the chart's pages."""

    estimate: Estimate | None = None


def refresh_expected_periods(engine: Engine, client, configs: list[ScheduleConfig],
                             today: date | None = None) -> list[PeriodSources]:
    """Ask the API for each chart's published periods and store both sources (API calls per chart)."""
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
        if not gap_store.replace_expected_periods(engine, config.chart_id, rows, keep_if_unknown=api_dates is None):
            continue
        if sources.calendar_only or sources.api_only:
            log.info("%s: the API differs from the calendar: not published %s, off-calendar %s", config.slug,
                     [d.isoformat() for d in sources.calendar_only], [d.isoformat() for d in sources.api_only])
        results.append(sources)
    return results


# -- live gaps and coverage ---------------------------------------------------------------------------------
def windows(engine: Engine, *, slug: str | None = None, chart_id: int | None = None, chart_ids: list[int] | None = None,
            today: date | None = None) -> list[Window]:
    """The windows gaps and coverage are computed over: one chart's (named by ``slug`` or ``chart_id``,
    active or not: ChartNotFound, ScheduleNotFound, ScheduleError when its settings are invalid), the
    given charts' (invalid ones left out), or every active schedule's."""
    today = today or datetime.now(UTC).date()
    if slug is not None or chart_id is not None:
        found = get_chart(engine, slug=slug, chart_id=chart_id)
        row = row_of_chart(engine, found.id)
        if row is None:
            raise ScheduleNotFound(f"chart {found.slug!r} has no sync schedule")
        return [window_of(ScheduleConfig.from_row(row), today)]
    result = []
    for row in load_rows(engine, chart_ids=chart_ids):
        if chart_ids is None and not row.is_active:
            continue
        try:
            result.append(window_of(ScheduleConfig.from_row(row), today))
        except ScheduleError:
            continue  # an invalid schedule has no DAG and no periods; its page says why
    return result


@dataclass(frozen=True)
class GapReport:
    """Missing periods now: the gaps (behind each DAG's catchup front: heal them) and, per chart, what
    waits for the catchup (Airflow's scheduler creates those runs in turn)."""

    gaps: list[GapRange]
    waiting: list[CatchupWait]


def gap_report(engine: Engine, chart_id: int | None = None, slug: str | None = None,
               today: date | None = None) -> GapReport:
    """Gap ranges now, by chart slug and period, each with its heal state (running or queued), and
    what waits for each chart's catchup: of one chart (named by ``chart_id`` or ``slug``), else of
    every active schedule."""
    chosen = windows(engine, slug=slug, chart_id=chart_id, today=today)
    runs = gap_store.live_runs(engine, chosen)
    by_chart: dict[int, list] = {}
    for run in runs:
        by_chart.setdefault(run.chart_id, []).append(run)
    fronts = catchup_fronts(chosen)
    found, waiting = [], []
    for w in chosen:
        behind, wait = split_at_front(w, gaps_of(w, by_chart.get(w.chart_id, [])), fronts.get(w.chart_id))
        found.extend(behind)
        waiting.extend([wait] if wait else [])
        metrics.gauge(metrics.GAPS_OPEN, sum(g.periods for g in behind), chart=w.slug)
    return GapReport(with_heal_state(engine, sorted(found, key=lambda g: (g.slug, g.start))),
                     sorted(waiting, key=lambda c: c.slug))


def list_gaps(engine: Engine, chart_id: int | None = None, slug: str | None = None,
              today: date | None = None) -> list[GapRange]:
    """``gap_report``'s gaps: the ranges a heal or a backfill may close without racing the scheduler."""
    return gap_report(engine, chart_id, slug, today).gaps


def catchup_fronts(chosen: list[Window]) -> dict[int, date]:
    """Each window's catchup front (``orchestration.catchup_fronts``), by chart id; charts whose DAG
    has no next run, or is not in Airflow, are left out."""
    fronts = orchestration.catchup_fronts([dag_id_for(w.slug) for w in chosen])
    return {w.chart_id: fronts[dag_id_for(w.slug)] for w in chosen if fronts.get(dag_id_for(w.slug))}


def with_heal_state(engine: Engine, found: list[GapRange]) -> list[GapRange]:
    """Each gap range with the state of the open heal range that overlaps it."""
    if not found:
        return found
    open_ranges = heal_store.open_ranges(engine, sorted({g.chart_id for g in found}))
    result = []
    for gap in found:
        h = next((h for h in open_ranges if h.chart_id == gap.chart_id and h.start <= gap.end
                  and gap.start <= h.end), None)
        result.append(replace(gap, heal=h.status, backfill_id=h.backfill_id) if h else gap)
    return result


def coverages(engine: Engine, chart_ids: list[int], today: date | None = None) -> dict[int, Coverage]:
    """Coverage now of the given charts (one statement), by chart id."""
    chosen = windows(engine, chart_ids=chart_ids, today=today)
    runs = gap_store.live_runs(engine, chosen)
    return {w.chart_id: coverage_of(w, [r for r in runs if r.chart_id == w.chart_id]) for w in chosen}


def send_chart_gauges(engine: Engine, configs: list[ScheduleConfig], now: datetime | None = None) -> dict[str, dict]:
    """Send each chart's coverage %, missing periods and freshness as gauges (the gap audit does, daily);
    what was sent, by slug. Freshness is left out for a chart never synced."""
    now = now or datetime.now(UTC)
    ids = [c.chart_id for c in configs]
    covered = coverages(engine, ids, now.date())
    fresh = execution_stats(engine, ids, since=now, now=now)
    sent: dict[str, dict] = {}
    for config in configs:
        values: dict = {}
        if (coverage := covered.get(config.chart_id)) is not None:
            values["coverage_percent"] = coverage.coverage_percent
            values["missing_periods"] = coverage.gap_periods
            metrics.gauge(metrics.COVERAGE, coverage.coverage_percent, chart=config.slug)
            metrics.gauge(metrics.MISSING_PERIODS, coverage.gap_periods, chart=config.slug)
        seconds = fresh[config.chart_id].freshness_seconds if config.chart_id in fresh else None
        if seconds is not None:
            values["freshness_seconds"] = seconds
            metrics.gauge(metrics.FRESHNESS, seconds, chart=config.slug)
        sent[config.slug] = values
    return sent


def chart_coverage(engine: Engine, chart_id: int, today: date | None = None) -> Coverage | None:
    """One chart's coverage now, with what the gap audit learnt from the API; None without a
    (valid) schedule."""
    try:
        (window,) = windows(engine, chart_id=chart_id, today=today)
    except (ScheduleNotFound, ScheduleError):
        return None
    runs = gap_store.live_runs(engine, [window])
    facts = gap_store.audit_facts(engine, [chart_id], {chart_id: window.last}).get(chart_id, {})
    return coverage_of(window, runs, **facts)


# -- healing ---------------------------------------------------------------------------------------------------
def heal(engine: Engine, slugs: list[str] | None, *, actor: str, today: date | None = None) -> list[HealResult]:
    """Backfill each chart's gap ranges now: the first range's backfill starts, the other ranges are
    queued behind it. Only gaps behind each DAG's catchup front are healed; what waits for the
    catchup is left to it, and said. Each chart's result is its own: Airflow refusing one chart's
    backfill never stops the others. Every backfill Airflow accepted is audited, naming ``actor``.
    Every door calls this."""
    for slug in slugs or []:  # an unknown chart, or one without a schedule, is bad input: refused before any backfill
        if row_of_chart(engine, get_chart(engine, slug=slug).id) is None:
            raise ScheduleNotFound(f"chart {slug!r} has no sync schedule")
    reports = [gap_report(engine, today=today)] if slugs is None else [_chart_report(engine, s, today) for s in slugs]
    by_slug: dict[str, list[GapRange]] = {}
    waiting = {w.slug: w for r in reports for w in r.waiting}
    for gap in (g for r in reports for g in r.gaps):
        by_slug.setdefault(gap.slug, []).append(gap)
    configs = {row.slug: row for row in load_rows(engine)}
    results = []
    for slug in sorted(set(slugs or []) | set(by_slug) | set(waiting)):
        try:
            results.append(_heal_chart(engine, slug, by_slug.get(slug, []), waiting.get(slug), configs.get(slug),
                                       actor))
        except Exception as exc:  # noqa: BLE001 - one chart's failure is that chart's result, in words
            log.exception("%s: heal failed", slug)
            results.append(HealResult(slug, dag_id_for(slug), None, None, "refused", None,
                                      f"not healed: {type(exc).__name__}: {exc}"))
    results = [_with_estimate(engine, r, by_slug.get(r.slug, [])) for r in results]
    with engine.begin() as conn:
        for result in results:
            if result.status == "created":
                audit.record(conn, actor=actor, action="heal", entity=audit.BACKFILL,
                             entity_id=result.backfill_id, after=asdict(result))
    return results


def heal_estimate(engine: Engine, slugs: list[str] | None, today: date | None = None) -> Estimate:
    """What healing these charts (None: every active schedule) would cost before anything starts: the periods
    of their gaps behind the catchup fronts x each chart's pages, beside the quota last read."""
    reports = [gap_report(engine, today=today)] if slugs is None else [_chart_report(engine, s, today) for s in slugs]
    periods: dict[int, int] = {}
    for gap in (g for r in reports for g in r.gaps):
        periods[gap.chart_id] = periods.get(gap.chart_id, 0) + gap.periods
    return budget.estimate(engine, periods)


def _with_estimate(engine: Engine, result: BareHealResult, ranges: list[GapRange]) -> HealResult:
    cost = budget.estimate(engine, {ranges[0].chart_id: sum(g.periods for g in ranges)}) \
        if ranges and result.status in COSTING else None
    return HealResult(**{f.name: getattr(result, f.name) for f in fields(BareHealResult)}, estimate=cost)


def _chart_report(engine: Engine, slug: str, today: date | None) -> GapReport:
    try:
        return gap_report(engine, slug=slug, today=today)
    except ScheduleError:
        return GapReport([], [])  # invalid settings: no DAG to backfill


def _heal_chart(engine: Engine, slug: str, ranges: list[GapRange], waiting: CatchupWait | None, row,
                actor: str) -> HealResult:
    dag_id = dag_id_for(slug)
    left = f"; {waiting.message}" if waiting else ""
    if not ranges:
        return HealResult(slug, dag_id, None, None, "nothing-to-heal", None,
                          ("no gaps behind the catchup" if waiting else "no gaps") + left, waiting=waiting)
    start, end = ranges[0].start, ranges[-1].end
    if row is None or row.sync_frequency not in BACKFILL_FREQUENCIES:
        return HealResult(slug, dag_id, start, end, "unsupported", None,
                          "only daily/weekly/monthly schedules map periods to backfill dates", waiting=waiting)
    active = orchestration.backfills(dag_id, active_only=True)
    if active:  # Airflow runs one backfill per DAG: every gap range it does not cover waits in the queue
        behind = [replace(g, heal=heal_store.QUEUED) for g in ranges if g.heal != heal_store.RUNNING]
        with engine.begin() as conn:
            heal_store.replace_queue(conn, ranges[0].chart_id, None, None, behind, actor, datetime.now(UTC))
        queued = f"; {len(behind)} gap range(s) queued behind it" if behind else ""
        return HealResult(slug, dag_id, start, end, "already-running", active[0].id,
                          f"backfill {active[0].id} ({active[0].from_date}..{active[0].to_date}) is still "
                          f"running{queued}" + left, behind, waiting)
    # the front again, just before the backfill: a DAG parsed since the gaps were listed starts its
    # catchup, and nothing may be backfilled from its front on
    fronts = orchestration.catchup_fronts([dag_id])
    if dag_id not in fronts:
        return HealResult(slug, dag_id, start, end, "dag-not-parsed", None,
                          f"{dag_id} is not in Airflow yet (it appears at the next DAG parse)", waiting=waiting)
    if fronts[dag_id] is not None:
        ranges = [g for g in ranges if g.end < fronts[dag_id]]
        if not ranges:
            return HealResult(slug, dag_id, None, None, "nothing-to-heal", None,
                              f"no gaps behind the catchup (it is at {fronts[dag_id]})", waiting=waiting)
    first, rest = ranges[0], ranges[1:]
    try:
        rerun = [run for g in ranges for run in orchestration.rerun_succeeded(dag_id, g.start, g.end)]
        backfill = orchestration.create_backfill(dag_id, first.start, first.end, actor, reprocess=REPROCESS)
    except orchestration.DagNotParsedYet as exc:
        return HealResult(slug, dag_id, start, end, "dag-not-parsed", None, str(exc), waiting=waiting)
    except orchestration.BackfillAlreadyRunning as exc:
        return HealResult(slug, dag_id, start, end, "already-running", None, str(exc), waiting=waiting)
    except orchestration.BackfillRefused as exc:
        return HealResult(slug, dag_id, start, end, "refused", None, f"Airflow refused the backfill: {exc}",
                          waiting=waiting)
    with engine.begin() as conn:
        heal_store.replace_queue(conn, first.chart_id, first, backfill.id, rest, actor, datetime.now(UTC))
    metrics.incr(metrics.HEALS_STARTED, chart=slug)
    periods = sum(g.periods for g in ranges)
    queued = f"; {len(rest)} more range(s) queued, each starts when the one before completes" if rest else ""
    if rerun:
        queued += f"; {len(rerun)} successful run(s) whose rankings are gone cleared to run again"
    span = first.start.isoformat() if first.start == first.end else f"{first.start}..{first.end}"
    return HealResult(slug, dag_id, first.start, first.end, "created", backfill.id,
                      f"backfill {backfill.id}: {first.periods} missing period(s) {span} "
                      f"({periods} in {len(ranges)} range(s)){queued}{left}",
                      [replace(g, heal=heal_store.QUEUED) for g in rest], waiting)


def advance_heals(engine: Engine, today: date | None = None) -> list[HealResult]:
    """Start the next queued range of every chart whose running heal backfill Airflow has completed.
    The range is narrowed to its periods that are still gaps now (a period synced meanwhile is left
    alone); what is no longer a gap is done."""
    started = []
    now = datetime.now(UTC)
    open_ranges = heal_store.open_ranges(engine)
    for chart_id in sorted({h.chart_id for h in open_ranges}):
        mine = [h for h in open_ranges if h.chart_id == chart_id]
        running = [h for h in mine if h.status == heal_store.RUNNING]
        dag_id = dag_id_for(mine[0].slug)
        if orchestration.backfills(dag_id, active_only=True):
            continue  # Airflow still runs a backfill of this DAG (the heal's own, or one made by hand)
        queued = [h for h in mine if h.status == heal_store.QUEUED]
        try:
            live = list_gaps(engine, chart_id=chart_id, today=today)
        except (ScheduleNotFound, ScheduleError):
            live = []
        still = [g for h in queued for g in live if h.start <= g.start and g.end <= h.end]
        with engine.begin() as conn:
            heal_store.finish(conn, [h.id for h in running], now)
            if not still:
                heal_store.finish(conn, [h.id for h in queued], now)
                continue
        actor = queued[0].actor
        try:
            # as the heal does: a period whose run succeeded but whose ranking is gone is cleared to run again
            # (a backfill that reprocesses failed runs passes over it)
            for g in still:
                orchestration.rerun_succeeded(dag_id, g.start, g.end)
            backfill = orchestration.create_backfill(dag_id, still[0].start, still[0].end, actor, reprocess=REPROCESS)
        except (orchestration.DagNotParsedYet, orchestration.BackfillAlreadyRunning) as exc:
            log.info("%s: the next heal range waits: %s", dag_id, exc)
            continue
        except orchestration.BackfillRefused as exc:  # Airflow will not backfill it: the queue ends here
            log.warning("%s: queued heal ranges dropped, Airflow refused the backfill: %s", dag_id, exc)
            with engine.begin() as conn:
                heal_store.finish(conn, [h.id for h in queued], now)
            continue
        with engine.begin() as conn:
            heal_store.replace_queue(conn, chart_id, still[0], backfill.id, still[1:], actor, now)
            result = HealResult(mine[0].slug, dag_id, still[0].start, still[0].end, "created", backfill.id,
                                f"backfill {backfill.id}: queued range {still[0].start}..{still[0].end} started",
                                still[1:])
            audit.record(conn, actor=actor, action="heal", entity=audit.BACKFILL, entity_id=backfill.id,
                         after=asdict(result))
        metrics.incr(metrics.HEALS_STARTED, chart=mine[0].slug)
        started.append(result)
    return started
