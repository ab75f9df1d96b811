"""Retention: prune execution history and recorded alerts older than a configurable age.

The age is the Airflow Variable ``chartsync_retention_days`` (default 180). Synced data
(rankings, entries, tracks) is never touched: only the logs about syncing it.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from chartsync import settings
from chartsync.store import alerts as alert_store
from chartsync.store import executions

log = logging.getLogger(__name__)

RETENTION_VARIABLE, DEFAULT_RETENTION_DAYS = settings.RETENTION_VARIABLE, settings.DEFAULT_RETENTION_DAYS


def retention_days(value: str | int | None) -> int:
    """The configured age in whole days (default when unset); ValueError names the variable."""
    if value is None or str(value).strip() == "":
        return DEFAULT_RETENTION_DAYS
    try:
        days = int(str(value).strip())
    except ValueError:
        raise ValueError(f"{RETENTION_VARIABLE} must be a whole number of days, not {value!r}") from None
    if days < 1:
        raise ValueError(f"{RETENTION_VARIABLE} must be at least 1 day, not {days}")
    return days


def prune(engine: Engine, days: int, now: datetime | None = None) -> dict:
    """Delete execution rows started, and alerts created, more than ``days`` ago; what was removed."""
    cutoff = (now or datetime.now(UTC)) - timedelta(days=days)
    with engine.begin() as conn:
        executions_deleted = executions.delete_started_before(conn, cutoff)
        alerts_deleted = alert_store.delete_created_before(conn, cutoff)
    removed = {"retention_days": days, "cutoff": cutoff.isoformat(),
               "executions_deleted": executions_deleted, "alerts_deleted": alerts_deleted}
    log.info("chart-sync retention: removed %(executions_deleted)d execution rows and %(alerts_deleted)d "
             "alerts older than %(retention_days)d days (before %(cutoff)s)", removed)
    return removed
