"""The coverage strip of a schedule: one cell per period of the past year, like a partition
status bar (synced, missing, failed, skipped by the API, not yet due, before the window)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import Engine

from chartsync.core import calendar as freqs
from chartsync.core.gaps import history_window
from chartsync.core.outcomes import FAILED, SKIPPED
from chartsync.core.schedule import ScheduleConfig
from chartsync.store import gaps as gap_store

SYNCED, MISSING, NOT_DUE, OUTSIDE = "synced", "missing", "not-yet-due", "outside-window"  # and FAILED, SKIPPED
STATUSES = (SYNCED, MISSING, FAILED, SKIPPED, NOT_DUE, OUTSIDE)


@dataclass(frozen=True)
class PeriodCell:
    period: date
    status: str
    detail: str = ""


def coverage_strip(engine: Engine, config: ScheduleConfig, today: date | None = None,
                   days: int = 365) -> list[PeriodCell]:
    """Every period of the chart's calendar in the past ``days``, with its status."""
    today = today or datetime.now(UTC).date()
    calendar = config.period_frequency
    periods = freqs.periods_between(calendar, today - timedelta(days=days), today, config.weekday)
    first, last = history_window(config, today)
    stored, api_rows, failures = gap_store.period_facts(engine, config.chart_id)
    api_known = any(row.in_api for row in api_rows)
    not_published = {row.period for row in api_rows if not row.in_api} if api_known else set()
    cells = []
    for p in periods:
        day = p.start
        if day in stored:
            cells.append(PeriodCell(day, SYNCED))
        elif day > last:
            cells.append(PeriodCell(day, NOT_DUE))
        elif day < first:
            cells.append(PeriodCell(day, OUTSIDE))
        elif day in not_published:
            cells.append(PeriodCell(day, SKIPPED, "the API did not publish this period"))
        elif day in failures:
            cells.append(PeriodCell(day, FAILED, (failures[day] or "")[:200]))
        else:
            cells.append(PeriodCell(day, MISSING))
    return cells
