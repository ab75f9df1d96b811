"""The Soundcharts API quota in the chart DB: readings of what is left (``chart_sync_quota_reading``) and the
calls spent per chart and UTC day (``chart_sync_api_calls``).

Readings stay bounded: recording one keeps, of its hour, only the first reading and itself, and drops
readings older than ``KEEP_READINGS``. Calls are added by an upsert on (day, chart), NULL chart included,
that SQLite and PostgreSQL both run. ``record`` writes a reading and calls in one transaction: what a sync
try spends on it, cheaply.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from sqlalchemy import Connection, Engine, delete, func, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from chartsync.core.quota import QuotaReading
from chartsync.core.timestamps import as_utc
from chartsync.store.tables import (
    API_CALLS_CHART_KEY,
    chart,
    chart_ranking,
    chart_sync_api_calls,
    chart_sync_quota_reading,
)

KEEP_READINGS = timedelta(days=35)
SOURCES = ("response", "usage")


def record(engine: Engine, reading: QuotaReading | None, source: str, *, chart_id: int | None = None,
           calls: int = 0, day: date | None = None) -> None:
    """A reading (None: none) and ``calls`` spent on ``chart_id`` on ``day`` (default: the reading's UTC day,
    else today), in one transaction."""
    if reading is None and calls <= 0:
        return
    day = day or (reading.seen_at.astimezone(UTC).date() if reading else datetime.now(UTC).date())
    with engine.begin() as conn:
        if reading is not None:
            _insert_reading(conn, reading, source)
        if calls > 0:
            _add_calls(conn, chart_id, calls, day)


def record_reading(engine: Engine, reading: QuotaReading, source: str) -> None:
    """Store a reading (``source``: ``response`` or ``usage``), thinning its hour and dropping old ones."""
    with engine.begin() as conn:
        _insert_reading(conn, reading, source)


def add_calls(engine: Engine, chart_id: int | None, calls: int, day: date) -> None:
    """Add ``calls`` to what ``chart_id`` (None: no chart) spent on ``day``."""
    if calls > 0:
        with engine.begin() as conn:
            _add_calls(conn, chart_id, calls, day)


def latest_reading(engine: Engine) -> QuotaReading | None:
    """The newest reading that said how much is left."""
    r = chart_sync_quota_reading.c
    with engine.connect() as conn:
        row = conn.execute(select(r.remaining, r.seen_at, r.details).where(r.remaining.is_not(None))
                           .order_by(r.seen_at.desc(), r.id.desc()).limit(1)).first()
    return None if row is None else QuotaReading(row.remaining, as_utc(row.seen_at), row.details or {})


def spent_since(engine: Engine, since: date) -> int:
    """Calls spent from UTC day ``since`` on, every chart and none."""
    c = chart_sync_api_calls.c
    with engine.connect() as conn:
        return int(conn.execute(select(func.coalesce(func.sum(c.calls), 0)).where(c.day >= since)).scalar_one())


def spent_by_chart(engine: Engine, since: date) -> dict[int | None, int]:
    """Calls spent from UTC day ``since`` on, per chart (None: calls tied to no chart)."""
    c = chart_sync_api_calls.c
    with engine.connect() as conn:
        rows = conn.execute(select(c.chart_id, func.sum(c.calls)).where(c.day >= since).group_by(c.chart_id))
        return {chart_id: int(calls) for chart_id, calls in rows}


def first_day_since(engine: Engine, since: date) -> date | None:
    """The first UTC day from ``since`` on with calls recorded (how many days a burn rate can average)."""
    c = chart_sync_api_calls.c
    with engine.connect() as conn:
        return conn.execute(select(func.min(c.day)).where(c.day >= since)).scalar_one()


def chart_size(engine: Engine, chart_id: int) -> int | None:
    """Entries a period of the chart has, for cost estimates: its published size (``chart.max_results``), else
    the entry count of its newest stored ranking; None when neither is known."""
    with engine.connect() as conn:
        size = conn.execute(select(chart.c.max_results).where(chart.c.id == chart_id)).scalar()
        if size:
            return int(size)
        r = chart_ranking.c
        return conn.execute(select(r.entry_count).where(r.chart_id == chart_id)
                            .order_by(r.period.desc()).limit(1)).scalar()


# -- in a transaction ---------------------------------------------------------------------------------------
def _insert_reading(conn: Connection, reading: QuotaReading, source: str) -> None:
    if source not in SOURCES:
        raise ValueError(f"quota reading source {source!r} is not one of {', '.join(SOURCES)}")
    r = chart_sync_quota_reading.c
    seen = reading.seen_at.astimezone(UTC)
    hour = seen.replace(minute=0, second=0, microsecond=0)
    in_hour = (r.seen_at >= hour, r.seen_at < hour + timedelta(hours=1))
    first = conn.execute(select(r.id).where(*in_hour).order_by(r.seen_at, r.id).limit(1)).scalar()
    if first is not None:  # keep the hour's first reading; the newest replaces the others
        conn.execute(delete(chart_sync_quota_reading).where(*in_hour, r.id != first, r.seen_at <= seen))
    conn.execute(insert(chart_sync_quota_reading).values(seen_at=seen, remaining=reading.remaining, source=source,
                                                         details=reading.details or None))
    conn.execute(delete(chart_sync_quota_reading).where(r.seen_at < seen - KEEP_READINGS))


def _add_calls(conn: Connection, chart_id: int | None, calls: int, day: date) -> None:
    upsert = (pg_insert if conn.dialect.name == "postgresql" else sqlite_insert)(chart_sync_api_calls)
    statement = upsert.values(day=day, chart_id=chart_id, calls=calls)
    conn.execute(statement.on_conflict_do_update(
        index_elements=[chart_sync_api_calls.c.day, API_CALLS_CHART_KEY],
        set_={"calls": chart_sync_api_calls.c.calls + statement.excluded.calls}))
