"""The heal queue (``chart_sync_heal``): the gap ranges a heal backfills one after the other.

Airflow allows one active backfill per DAG, so a heal starts the backfill of a chart's first gap
range (``running``, with its backfill id) and queues the others; ``services.gaps.advance_heals``
starts the next one when Airflow has completed the backfill before it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import Connection, Engine, insert, select, update

from chartsync.core.gaps import GapRange
from chartsync.store.tables import chart, chart_sync_heal

QUEUED, RUNNING, DONE, CANCELLED = "queued", "running", "done", "cancelled"
OPEN = (QUEUED, RUNNING)


@dataclass(frozen=True)
class HealRange:
    id: int
    chart_id: int
    slug: str
    start: date
    end: date
    periods: int
    status: str
    backfill_id: int | None
    actor: str


def open_ranges(db: Engine | Connection, chart_ids: list[int] | None = None) -> list[HealRange]:
    """Running and queued ranges (of the given charts), by chart and period."""
    h = chart_sync_heal.c
    query = (select(chart_sync_heal, chart.c.slug).join(chart, chart.c.id == h.chart_id)
             .where(h.status.in_(OPEN)).order_by(h.chart_id, h.start_period))
    if chart_ids is not None:
        query = query.where(h.chart_id.in_(chart_ids))
    if isinstance(db, Connection):
        rows = db.execute(query).all()
    else:
        with db.connect() as conn:
            rows = conn.execute(query).all()
    return [HealRange(r.id, r.chart_id, r.slug, r.start_period, r.end_period, r.period_count, r.status,
                      r.backfill_id, r.actor) for r in rows]


def replace_queue(conn: Connection, chart_id: int, running: GapRange | None, backfill_id: int | None,
                  queued: list[GapRange], actor: str, now: datetime) -> None:
    """A chart's new queue: what was queued before is cancelled; ``running`` has started its backfill."""
    h = chart_sync_heal.c
    conn.execute(update(chart_sync_heal).where(h.chart_id == chart_id, h.status == QUEUED)
                 .values(status=CANCELLED, completed_at=now))
    rows = [{"chart_id": chart_id, "start_period": g.start, "end_period": g.end, "period_count": g.periods,
             "status": QUEUED, "backfill_id": None, "actor": actor, "created_at": now, "started_at": None}
            for g in queued]
    if running is not None:
        rows.insert(0, {"chart_id": chart_id, "start_period": running.start, "end_period": running.end,
                        "period_count": running.periods, "status": RUNNING, "backfill_id": backfill_id,
                        "actor": actor, "created_at": now, "started_at": now})
    if rows:
        conn.execute(insert(chart_sync_heal), rows)


def finish(conn: Connection, heal_ids: list[int], now: datetime, status: str = DONE) -> None:
    if heal_ids:
        conn.execute(update(chart_sync_heal).where(chart_sync_heal.c.id.in_(heal_ids))
                     .values(status=status, completed_at=now))
