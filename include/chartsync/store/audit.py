"""The audit log: who changed what, when, with the before and after state as JSON.

``record`` takes the caller's connection so the audit row commits (or rolls back) with the
change it describes.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, select

from chartsync.core.paging import Page, PageRequest
from chartsync.core.timestamps import as_utc
from chartsync.store.tables import chart_sync_audit

SCHEDULE, CHART, BACKFILL = "schedule", "chart", "backfill"


def jsonable(value: Any) -> Any:
    """Dates as ISO strings, enums as their values: what a JSON column can hold on every dialect."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [jsonable(v) for v in value]
    if isinstance(value, datetime):
        return as_utc(value).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Decimal):
        return float(value)
    return value


def record(conn: Connection, *, actor: str, action: str, entity: str, entity_id: int | None,
           before: dict | None = None, after: dict | None = None, now: datetime | None = None) -> None:
    conn.execute(insert(chart_sync_audit).values(
        actor=actor[:250], action=action, entity=entity, entity_id=entity_id,
        before=jsonable(before) if before is not None else None,
        after=jsonable(after) if after is not None else None,
        created_at=now or datetime.now(UTC),
    ))


def entries(engine: Engine, *, entity: str | None = None, entity_id: int | None = None, actor: str | None = None,
            action: str | None = None, paging: PageRequest = PageRequest()) -> Page:
    """Newest first."""
    a = chart_sync_audit.c
    filters = [column == value for column, value in
               ((a.entity, entity), (a.entity_id, entity_id), (a.actor, actor), (a.action, action))
               if value is not None]
    query = select(chart_sync_audit).where(*filters).order_by(a.created_at.desc(), a.id.desc())
    with engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(chart_sync_audit).where(*filters)).scalar_one()
        rows = conn.execute(query.limit(paging.limit).offset(paging.offset)).all()
    items = [dict(r._mapping) | {"created_at": as_utc(r.created_at)} for r in rows]
    return Page(items, total, paging.limit, paging.offset)


def actors(engine: Engine, limit: int = 200) -> list[str]:
    """Who has changed anything: the audit page's choice of actors."""
    with engine.connect() as conn:
        return list(conn.execute(select(chart_sync_audit.c.actor).distinct()
                                 .order_by(chart_sync_audit.c.actor).limit(limit)).scalars())
