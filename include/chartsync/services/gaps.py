"""Complete history: expected periods, gap detection, coverage, and healing through backfills.

Expected periods of a chart's history window come from two sources, both kept in
``chart_expected_period``: the calendar of its frequency, and the API's available rankings.
The API's list wins where they differ (a weekly chart published on Fridays, a skipped holiday
week); the difference is reported in ``chart_sync_coverage``. Gap detection is set-based
(``store.gaps``). Healing creates one Airflow backfill per chart DAG over its gap ranges.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from datetime import UTC, date, datetime

from sqlalchemy import Engine

from chartsync.core.gaps import (
    BACKFILL_FREQUENCIES,
    REPROCESS,
    GapRange,
    HealResult,
    PeriodSources,
    history_window,
    period_sources,
)
from chartsync.core.schedule import ScheduleConfig, dag_id_for
from chartsync.seam import orchestration
from chartsync.soundcharts.errors import SoundchartsError
from chartsync.store import audit
from chartsync.store import gaps as gap_store
from chartsync.store.schedules import load_rows

__all__ = ["GapRange", "HealResult", "PeriodSources", "detect_gaps", "heal", "history_window",
           "list_gaps", "period_sources", "refresh_expected_periods"]

log = logging.getLogger(__name__)
list_gaps = gap_store.list_gaps


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


def detect_gaps(engine: Engine, today: date | None = None) -> list[GapRange]:
    """Recompute gap ranges and coverage for every active schedule, store them, list the gaps."""
    gap_store.replace_gaps_and_coverage(engine, today or datetime.now(UTC).date(), datetime.now(UTC))
    return list_gaps(engine)


def heal(engine: Engine, slugs: list[str] | None, *, actor: str) -> list[HealResult]:
    """One backfill per chart DAG over its gap ranges (Airflow allows one active backfill per DAG);
    every backfill Airflow accepted is audited, naming ``actor``. Every door calls this."""
    by_slug: dict[str, list[GapRange]] = {}
    for gap in gap_store.list_gaps(engine):
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
        if row is None or row.sync_frequency not in BACKFILL_FREQUENCIES:
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
            backfill = orchestration.create_backfill(dag_id, start, end, actor, reprocess=REPROCESS)
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
    with engine.begin() as conn:
        for result in results:
            if result.status == "created":
                audit.record(conn, actor=actor, action="heal", entity=audit.BACKFILL,
                             entity_id=result.backfill_id, after=asdict(result))
    return results
