"""The rules ops read off a schedule: status, overdue, success rate, freshness. Pure.

The SQL twin of the overdue rule (for lists filtered by status) is ``store.stats.overdue_clause``;
tests check that they agree.
"""

from __future__ import annotations

from datetime import datetime

from chartsync.core.calendar import overdue_after
from chartsync.core.timestamps import as_utc

# What the pages and the API call a schedule (and a chart that has none).
ACTIVE, OVERDUE, INACTIVE, NOT_SCHEDULED = "active", "overdue", "inactive", "not-scheduled"
SCHEDULE_STATUSES = (ACTIVE, OVERDUE, INACTIVE)
CHART_STATUSES = (*SCHEDULE_STATUSES, NOT_SCHEDULED)


def is_overdue(*, is_active: bool, frequency: str, last_success_at: datetime | None, created_at: datetime,
               now: datetime, custom_interval_hours: int | None = None,
               cron_expression: str | None = None) -> bool:
    """Active, and no success (or, never synced, no creation) for longer than ``overdue_after``."""
    if not is_active:
        return False
    reference = last_success_at or created_at
    return as_utc(now) - as_utc(reference) > overdue_after(frequency, custom_interval_hours, cron_expression)


def schedule_status(*, is_active: bool, overdue: bool) -> str:
    """The word the UI and API show: active, overdue or inactive."""
    if not is_active:
        return INACTIVE
    return OVERDUE if overdue else ACTIVE


def success_rate(successful: int, failed: int) -> float | None:
    """Share of decided executions that succeeded (skipped periods count neither way)."""
    decided = successful + failed
    return round(successful / decided, 4) if decided else None


def freshness_seconds(last_success_at: datetime | None, now: datetime) -> float | None:
    """Time since the last successful sync."""
    if last_success_at is None:
        return None
    return round((as_utc(now) - as_utc(last_success_at)).total_seconds(), 1)
