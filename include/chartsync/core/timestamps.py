"""Timestamps as chart-sync writes them: always UTC.

SQLite hands back naive datetimes; every timestamp chart-sync writes is UTC, so a naive value
read back is UTC. The one place that says so.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any


def as_utc(value: datetime) -> datetime:
    """A timestamp read back from the chart DB, zone-aware (naive means UTC)."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def parse_utc(value: Any) -> datetime | None:
    """A datetime or an ISO string (``Z`` allowed) as an aware UTC datetime; None for None or ''."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return as_utc(value)
    return as_utc(datetime.fromisoformat(str(value).replace("Z", "+00:00")))


def midnight(day: date) -> datetime:
    """The start of a day in UTC: where a period (and a data interval) begins."""
    return datetime.combine(day, datetime.min.time(), tzinfo=UTC)
