"""The ``chart_sync_alert`` table (the alert feed), and what alerting asks of the other tables."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from functools import partial

from sqlalchemy import Connection, Engine, and_, delete, false, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from chartsync.core.alerts import FAILURE, KINDS, OVERDUE, Alert, links
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
    chart_sync_quota_episode,
    chart_sync_schedule,
)


def record_alert(engine: Engine, alert: Alert, message: str, channels: Mapping[str, str],
                 now: datetime | None = None) -> int:
    values = {"kind": alert.kind, "chart_id": alert.chart_id, "dag_id": alert.dag_id, "run_id": alert.run_id,
              "period": alert.period, "message": message, "channels": dict(channels),
              "created_at": now or datetime.now(UTC)}
    return _insert_alert(engine, values)


def claim_alert(engine: Engine, alert: Alert, message: str, *, task_id: str, try_number: int,
                now: datetime | None = None) -> int | None:
    """Record the alert about one task try before it is sent; None when that try has its alert already.

    The unique index ``uq_chart_sync_alert_task_try`` makes the first writer win, across processes.
    The channels' outcomes follow with ``record_delivery``.
    """
    values = {"kind": alert.kind, "chart_id": alert.chart_id, "dag_id": alert.dag_id, "run_id": alert.run_id,
              "task_id": task_id, "try_number": try_number, "period": alert.period, "message": message,
              "channels": {}, "created_at": now or datetime.now(UTC)}
    recorded = partial(try_alerted, engine, alert.kind, alert.dag_id, alert.run_id, task_id, try_number)
    return _insert_alert(engine, values, recorded)


def _insert_alert(engine: Engine, values: dict, recorded: Callable[[], bool] = lambda: False) -> int | None:
    """Insert the alert row; its id. Refused because the chart was deleted meanwhile: kept without the
    chart (as ON DELETE SET NULL would). None when ``recorded()`` says the row was there already."""
    attempts = (values,) if values["chart_id"] is None else (values, values | {"chart_id": None})
    for attempt in attempts:
        try:
            with engine.begin() as conn:
                return conn.execute(insert(chart_sync_alert).values(**attempt)).inserted_primary_key[0]
        except IntegrityError:
            if recorded():
                return None
            if attempt is attempts[-1]:
                raise


def record_delivery(engine: Engine, alert_id: int, channels: Mapping[str, str]) -> None:
    with engine.begin() as conn:
        conn.execute(update(chart_sync_alert).where(chart_sync_alert.c.id == alert_id).values(channels=dict(channels)))


def try_alerted(engine: Engine, kind: str, dag_id: str | None, run_id: str | None, task_id: str,
                try_number: int) -> bool:
    """Has this task try had its ``kind`` alert? A failure alert recorded before alerts named their try
    (``try_number`` NULL) counts for every try of its run."""
    a = chart_sync_alert.c
    legacy = and_(a.kind == FAILURE, a.try_number.is_(None)) if kind == FAILURE else false()
    with engine.connect() as conn:
        return conn.execute(select(a.id).where(
            a.kind == kind, a.dag_id == dag_id, a.run_id == run_id,
            or_(and_(a.task_id == task_id, a.try_number == try_number), legacy)).limit(1)).first() is not None


def failure_alerted_tries(engine: Engine, runs: set[tuple[str, str]]) -> tuple[set[tuple], set[tuple]]:
    """Of these (dag_id, run_id) pairs: the (dag_id, run_id, task_id, try_number) with a failure alert, and
    the (dag_id, run_id) with a failure alert from before alerts named their try."""
    tries, legacy = set(), set()
    runs_list = sorted(runs)
    a = chart_sync_alert.c
    with engine.connect() as conn:
        for start in range(0, len(runs_list), 200):
            batch = runs_list[start:start + 200]
            for r in conn.execute(select(a.dag_id, a.run_id, a.task_id, a.try_number).where(
                    a.kind == FAILURE, or_(*(and_(a.dag_id == d, a.run_id == r) for d, r in batch)))):
                if r.try_number is None:
                    legacy.add((r.dag_id, r.run_id))
                else:
                    tries.add((r.dag_id, r.run_id, r.task_id, r.try_number))
    return tries, legacy


def chart_of_dag(engine: Engine, dag_id: str | None):
    """The chart a chart DAG syncs and its schedule as they are now (id, slug, name, schedule_id,
    schedule_created_at; both schedule columns None once the schedule is removed), or None."""
    slug = slug_of(dag_id)
    if slug is None:
        return None
    with engine.connect() as conn:
        return conn.execute(
            select(chart.c.id, chart.c.slug, chart.c.name, chart_sync_schedule.c.id.label("schedule_id"),
                   chart_sync_schedule.c.created_at.label("schedule_created_at"))
            .outerjoin(chart_sync_schedule, chart_sync_schedule.c.chart_id == chart.c.id)
            .where(chart.c.slug == slug)).first()


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


def ranking_stored(engine: Engine, chart_id: int, period: date) -> bool:
    with engine.connect() as conn:
        return conn.execute(select(chart_ranking.c.id).where(
            chart_ranking.c.chart_id == chart_id, chart_ranking.c.period == period)).first() is not None


def chart_and_execution(engine: Engine, dag_id: str | None, run_id: str | None):
    """The chart (with its schedule id) a chart DAG syncs, and the run's newest execution row."""
    if slug_of(dag_id) is None:
        return None, None
    chart_row = chart_of_dag(engine, dag_id)
    with engine.connect() as conn:
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


# -- quota episodes: one "exhausted" and one "restored" alert each ------------------------------------------
def open_quota_episode(engine: Engine, started_at: datetime, remaining: int | None) -> int | None:
    """Open a quota episode; its id, or None when one is open already (the unique index on ``is_open``
    lets the first of concurrent callers win)."""
    try:
        with engine.begin() as conn:
            return conn.execute(insert(chart_sync_quota_episode).values(
                is_open=True, started_at=started_at, remaining_at_start=remaining)).inserted_primary_key[0]
    except IntegrityError:
        return None


def count_quota_wait(engine: Engine) -> None:
    """One more period waits in the open episode (none open: nothing)."""
    q = chart_sync_quota_episode.c
    with engine.begin() as conn:
        conn.execute(update(chart_sync_quota_episode).where(q.is_open.is_(True))
                     .values(periods_waited=q.periods_waited + 1))


def close_quota_episode(engine: Engine, ended_at: datetime, remaining: int | None):
    """Close the open episode; the closed row (id, started_at, periods_waited), or None when none was open or another caller
    closed it first (the conditional UPDATE decides: one caller changes the row)."""
    q = chart_sync_quota_episode.c
    with engine.begin() as conn:
        episode = conn.execute(select(q.id, q.started_at, q.periods_waited).where(q.is_open.is_(True))).first()
        if episode is None:
            return None
        closed = conn.execute(update(chart_sync_quota_episode).where(q.id == episode.id, q.is_open.is_(True))
                              .values(is_open=None, ended_at=ended_at, remaining_at_end=remaining)).rowcount
    return episode if closed == 1 else None


def open_quota_episode_started(engine: Engine) -> datetime | None:
    """When the open quota episode started; None when none is open."""
    q = chart_sync_quota_episode.c
    with engine.connect() as conn:
        started = conn.execute(select(q.started_at).where(q.is_open.is_(True))).scalar()
    return None if started is None else as_utc(started)


def delete_created_before(conn: Connection, cutoff: datetime) -> int:
    """Retention: drop alerts created before ``cutoff``; how many went."""
    return conn.execute(delete(chart_sync_alert).where(chart_sync_alert.c.created_at < cutoff)).rowcount
