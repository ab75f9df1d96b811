"""A schedule's coverage strip: one cell per period, like a partition status bar (synced, missing,
failed, skipped by the API, waiting for the catchup, not yet due, before the window), with the card
and the gap table of its page computed from the same periods (``schedule_coverage``), so the three
always agree. A missing period at or after the DAG's catchup front is not a gap: Airflow's
scheduler creates its run in turn (``core.gaps.split_at_front``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import Engine

from chartsync.core import calendar as freqs
from chartsync.core.gaps import (
    CatchupWait,
    Coverage,
    GapRange,
    coverage_of,
    gaps_of,
    runs_of,
    split_at_front,
    window_of,
)
from chartsync.core.outcomes import FAILED, SKIPPED
from chartsync.core.schedule import ScheduleConfig
from chartsync.services.gaps import catchup_fronts, with_heal_state
from chartsync.store import gaps as gap_store

SYNCED, MISSING, WAITING, NOT_DUE, OUTSIDE = (  # and FAILED, SKIPPED
    "synced", "missing", "waiting-for-catchup", "not-yet-due", "outside-window")
STATUSES = (SYNCED, MISSING, FAILED, SKIPPED, WAITING, NOT_DUE, OUTSIDE)


@dataclass(frozen=True)
class PeriodCell:
    period: date
    status: str
    detail: str = ""


@dataclass(frozen=True)
class ScheduleCoverage:
    cells: list[PeriodCell]
    coverage: Coverage
    gaps: list[GapRange]
    waiting: CatchupWait | None = None  # what Airflow's catchup creates in turn


def schedule_coverage(engine: Engine, config: ScheduleConfig, today: date | None = None,
                      days: int = 365) -> ScheduleCoverage:
    """The strip (every period of the window, and of the past ``days`` at least), the coverage card
    and the gap ranges of one schedule, all from one read of its periods."""
    today = today or datetime.now(UTC).date()
    window = window_of(config, today)
    facts = gap_store.period_facts(engine, window)
    expected = [f for f in facts if f.expected]
    runs = runs_of(config.chart_id, ((f.period, f.stored) for f in expected))
    audit = gap_store.audit_facts(engine, [config.chart_id], {config.chart_id: window.last}).get(config.chart_id, {})
    front = catchup_fronts([window]).get(config.chart_id)
    gaps, waiting = split_at_front(window, gaps_of(window, runs), front)
    by_day = {f.period: f for f in facts}
    calendar = freqs.periods_between(config.period_frequency, min(window.first, today - timedelta(days=days)),
                                     today, config.weekday)
    cells = []
    for day in sorted({p.start for p in calendar} | set(by_day)):
        fact = by_day.get(day)
        if day > window.last:
            cells.append(PeriodCell(day, NOT_DUE))
        elif day < window.first:
            cells.append(PeriodCell(day, OUTSIDE))
        elif fact is None or not fact.expected:
            cells.append(PeriodCell(day, SKIPPED, "the API did not publish this period"))
        elif fact.stored:
            cells.append(PeriodCell(day, SYNCED))
        elif fact.failed:
            cells.append(PeriodCell(day, FAILED, (fact.error or "")[:200]))
        elif front is not None and day >= front:
            cells.append(PeriodCell(day, WAITING, f"Airflow's catchup creates this run in turn (it is at {front})"))
        else:
            cells.append(PeriodCell(day, MISSING))
    return ScheduleCoverage(cells, coverage_of(window, runs, **audit), with_heal_state(engine, gaps), waiting)


def coverage_strip(engine: Engine, config: ScheduleConfig, today: date | None = None,
                   days: int = 365) -> list[PeriodCell]:
    """Every period of the chart's window (and of the past ``days``), with its status."""
    return schedule_coverage(engine, config, today, days).cells
