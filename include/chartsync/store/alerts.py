"""The ``chart_sync_alert`` table (the alert feed), and what alerting asks of the other tables."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime

from sqlalchemy import Connection, Engine, delete, func, insert, select
from sqlalchemy.exc import IntegrityError

from chartsync.core.alerts import KINDS, OVERDUE, Alert, links
from chartsync.core.outcomes import FAILED
from chartsync.core.paging import Page, PageRequest
from chartsync.core.schedule import slug_of
from chartsync.core.timestamps import as_utc
from chartsync.store.stats import last_success_subquery
from chartsync.store.tables import (
    chart,
    chart_ranking,
    chart_sync_alert,
    chart_sync_execution,
    chart_sync_schedule,
)


def record_alert(engine: Engine, alert: Alert, message: str, channels: Mapping[str, str],
                 now: datetime | None = None) -> int:
    values = {"kind": alert.kind, "chart_id": alert.chart_id, "dag_id": alert.dag_id, "run_id": alert.run_id,
              "period": alert.period, "message": message, "channels": dict(channels),
              "created_at": now or datetime.now(UTC)}
    try:
        with engine.begin() as conn:
            return conn.execute(insert(chart_sync_alert).values(**values)).inserted_primary_key[0]
    except IntegrityError:
        if alert.chart_id is None:
            raise
    # the chart was deleted meanwhile: keep the alert, without the chart (as ON DELETE SET NULL would)
    with engine.begin() as conn:
        inserted = conn.execute(insert(chart_sync_alert).values(**values | {"chart_id": None}))
        return inserted.inserted_primary_key[0]


def list_alerts(engine: Engine, kind: str | None = None, chart_id: int | None = None,
                since: datetime | None = None, paging: PageRequest = PageRequest(100),
                base_url: str = "") -> Page:
    """A page of recorded alerts, newest first, with links to the Airflow UI under ``base_url``.

    Raises ValueError for an unknown kind or a limit/offset out of range.
    """
    if kind is not None and kind not in KINDS:
        raise ValueError(f"kind: {kind!r} is not one of {', '.join(KINDS)}")
    if not 1 <= paging.limit <= 1000 or paging.offset < 0:
        raise ValueError("limit must be 1..1000 and offset >= 0")
    conditions = []
    if kind is not None:
        conditions.append(chart_sync_alert.c.kind == kind)
    if chart_id is not None:
        conditions.append(chart_sync_alert.c.chart_id == chart_id)
    if since is not None:
        conditions.append(chart_sync_alert.c.created_at >= as_utc(since).astimezone(UTC))
    query = (
        select(chart_sync_alert, chart.c.slug, chart.c.name, chart_sync_schedule.c.id.label("schedule_id"))
        .outerjoin(chart, chart.c.id == chart_sync_alert.c.chart_id)
        .outerjoin(chart_sync_schedule, chart_sync_schedule.c.chart_id == chart_sync_alert.c.chart_id)
        .where(*conditions)
        .order_by(chart_sync_alert.c.created_at.desc(), chart_sync_alert.c.id.desc())
        .limit(paging.limit).offset(paging.offset)
    )
    with engine.connect() as conn:
        total = conn.execute(
            select(func.count()).select_from(chart_sync_alert).where(*conditions)).scalar_one()
        rows = conn.execute(query).all()
    items = [{
        "id": r.id, "kind": r.kind, "chart_id": r.chart_id, "chart": r.slug, "chart_name": r.name,
        "schedule_id": r.schedule_id, "dag_id": r.dag_id, "run_id": r.run_id, "period": r.period,
        "message": r.message, "channels": r.channels or {}, "created_at": as_utc(r.created_at),
        "links": links(base_url, dag_id=r.dag_id, run_id=r.run_id, schedule_id=r.schedule_id),
    } for r in rows]
    return Page(items, total, paging.limit, paging.offset)


def overdue_candidates(engine: Engine) -> list:
    """Active schedules with their chart and last success (the one definition: ``last_success_subquery``)."""
    last_ok = last_success_subquery()
    query = (select(chart_sync_schedule, chart.c.slug, chart.c.name, last_ok.c.last_success_at)
             .join(chart, chart.c.id == chart_sync_schedule.c.chart_id)
             .outerjoin(last_ok, last_ok.c.chart_id == chart_sync_schedule.c.chart_id)
             .where(chart_sync_schedule.c.is_active.is_(True)).order_by(chart.c.slug))
    with engine.connect() as conn:
        return conn.execute(query).all()


def failed_tries_since(engine: Engine, since: datetime) -> int:
    e = chart_sync_execution.c
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(chart_sync_execution).where(
            e.status == FAILED, e.started_at >= since)).scalar_one()


def schedule_created_at(engine: Engine, schedule_id: int) -> datetime | None:
    with engine.connect() as conn:
        value = conn.execute(select(chart_sync_schedule.c.created_at)
                             .where(chart_sync_schedule.c.id == schedule_id)).scalar()
    return as_utc(value) if value else None


def ranking_stored(engine: Engine, chart_id: int, period: date) -> bool:
    with engine.connect() as conn:
        return conn.execute(select(chart_ranking.c.id).where(
            chart_ranking.c.chart_id == chart_id, chart_ranking.c.period == period)).first() is not None


def chart_and_execution(engine: Engine, dag_id: str | None, run_id: str | None):
    """The chart (with its schedule id) a chart DAG syncs, and the run's newest execution row."""
    slug = slug_of(dag_id)
    if slug is None:
        return None, None
    with engine.connect() as conn:
        chart_row = conn.execute(
            select(chart.c.id, chart.c.slug, chart.c.name, chart_sync_schedule.c.id.label("schedule_id"))
            .outerjoin(chart_sync_schedule, chart_sync_schedule.c.chart_id == chart.c.id)
            .where(chart.c.slug == slug)).first()
        execution = conn.execute(
            select(chart_sync_execution.c.period, chart_sync_execution.c.error)
            .where(chart_sync_execution.c.dag_id == dag_id, chart_sync_execution.c.run_id == run_id)
            .order_by(chart_sync_execution.c.id.desc())).first() if run_id else None
    return chart_row, execution


def alerted_since(engine: Engine, chart_id: int, since: datetime) -> bool:
    with engine.connect() as conn:
        return conn.execute(select(chart_sync_alert.c.id).where(
            chart_sync_alert.c.kind == OVERDUE, chart_sync_alert.c.chart_id == chart_id,
            chart_sync_alert.c.created_at >= since)).first() is not None


def delete_created_before(conn: Connection, cutoff: datetime) -> int:
    """Retention: drop alerts created before ``cutoff``; how many went."""
    return conn.execute(delete(chart_sync_alert).where(chart_sync_alert.c.created_at < cutoff)).rowcount
