"""The ``chart_sync_schedule`` table (the config table the DAG factory reads), joined with its chart."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, Engine, delete, func, insert, not_, select, update

from chartsync.core.schedule import ScheduleNotFound
from chartsync.settings import chart_dag_shard
from chartsync.store import audit
from chartsync.store import stats as stats_store
from chartsync.store.charts import get_chart
from chartsync.store.tables import chart, chart_sync_schedule


def config_query():
    """Schedule rows joined with the chart columns a DAG is built from."""
    return select(
        chart_sync_schedule, chart.c.slug, chart.c.name, chart.c.platform, chart.c.country_code,
        chart.c.frequency, chart.c.publication_weekday,
    ).join(chart, chart.c.id == chart_sync_schedule.c.chart_id)


def load_rows(engine: Engine, slug: str | None = None, chart_ids: list[int] | None = None, *,
              shard: int | None = None) -> list:
    """Raw joined rows (of one chart, of some charts, or of one DAG file's shard); the factory
    validates each on its own.

    A shard's charts are picked from a first query of every slug alone, by ``settings.chart_dag_shard``
    (the hash has no SQL twin); fetching only their full rows then costs half of fetching them all
    and filtering (10,000 schedules in 8 shards on SQLite: 17 ms against 39 ms a file; 50,000: 128
    against 257), and a stored shard column would need a migration for a few ms more.
    """
    query = config_query().order_by(chart.c.slug)
    if slug is not None:
        query = query.where(chart.c.slug == slug)
    with engine.connect() as conn:
        if shard is not None:
            slugs = conn.execute(select(chart.c.id, chart.c.slug).join(chart_sync_schedule)).all()
            chart_ids = [chart_id for chart_id, row_slug in slugs if chart_dag_shard(row_slug) == shard]
        if chart_ids is not None:
            query = query.where(chart_sync_schedule.c.chart_id.in_(chart_ids))
        return conn.execute(query).all()


def rows_by_id(engine: Engine, schedule_ids: list[int]) -> list:
    """The joined rows of the given schedules, in the order given."""
    if not schedule_ids:
        return []
    with engine.connect() as conn:
        found = {r.id: r for r in conn.execute(config_query().where(chart_sync_schedule.c.id.in_(schedule_ids)))}
    return [found[i] for i in schedule_ids if i in found]


def get_row(db: Engine | Connection, schedule_id: int):
    """The joined row of one schedule, or None (on an engine, or inside the caller's transaction)."""
    query = config_query().where(chart_sync_schedule.c.id == schedule_id)
    if isinstance(db, Connection):
        return db.execute(query).first()
    with db.connect() as conn:
        return conn.execute(query).first()


def row_of_chart(engine: Engine, chart_id: int):
    """The chart's schedule row (joined with the chart), or None; ChartNotFound for an unknown chart."""
    get_chart(engine, chart_id=chart_id)
    with engine.connect() as conn:
        return conn.execute(config_query().where(chart_sync_schedule.c.chart_id == chart_id)).first()


def existing_row(engine: Engine, schedule_id: int):
    """The joined row of one schedule; ScheduleNotFound when there is none."""
    row = get_row(engine, schedule_id)
    if row is None:
        raise ScheduleNotFound(f"no sync schedule with id {schedule_id}")
    return row


def row_of_slug(engine: Engine, slug: str):
    """The schedule row of the chart ``slug``; ChartNotFound or ScheduleNotFound."""
    row = row_of_chart(engine, get_chart(engine, slug=slug).id)
    if row is None:
        raise ScheduleNotFound(f"chart {slug!r} has no sync schedule")
    return row


def has_schedule(conn: Connection, chart_id: int) -> bool:
    return conn.execute(select(chart_sync_schedule.c.id).where(
        chart_sync_schedule.c.chart_id == chart_id)).first() is not None


def record(row) -> dict:
    """The schedule's own columns (also what the audit log stores as before/after)."""
    return {c.name: getattr(row, c.name) for c in chart_sync_schedule.c}


def insert_schedule(conn: Connection, values: dict, *, actor: str | None, now: datetime) -> int:
    """Insert a schedule (and, with an actor, its audit row) in the caller's transaction."""
    schedule_id = conn.execute(insert(chart_sync_schedule).values(**values)).inserted_primary_key[0]
    if actor is not None:
        audit.record(conn, actor=actor, action="create", entity=audit.SCHEDULE, entity_id=schedule_id,
                     after={"id": schedule_id, **values}, now=now)
    return schedule_id


def update_schedule(conn: Connection, schedule_id: int, before: dict, changed: dict, *, actor: str,
                    now: datetime) -> None:
    """Write the changed settings and their audit row in the caller's transaction."""
    conn.execute(update(chart_sync_schedule).where(chart_sync_schedule.c.id == schedule_id)
                 .values(**changed, updated_at=now))
    audit.record(conn, actor=actor, action="update", entity=audit.SCHEDULE, entity_id=schedule_id,
                 before=before, after=before | changed | {"updated_at": now}, now=now)


def delete_schedule(engine: Engine, chart_id: int, *, actor: str):
    """Delete a chart's schedule with its audit row; the deleted row, or None when there was none."""
    with engine.begin() as conn:
        before = conn.execute(select(chart_sync_schedule).where(chart_sync_schedule.c.chart_id == chart_id)).first()
        if before is None:
            return None
        conn.execute(delete(chart_sync_schedule).where(chart_sync_schedule.c.chart_id == chart_id))
        audit.record(conn, actor=actor, action="delete", entity=audit.SCHEDULE, entity_id=before.id,
                     before=dict(before._mapping))
        return before


def filtered_query(conn: Connection, *, platform: str | None, frequency: str | None, active: bool | None,
                   overdue: bool | None, now: datetime):
    query = config_query()
    if platform is not None:
        query = query.where(chart.c.platform == platform)
    if frequency is not None:
        query = query.where(chart_sync_schedule.c.sync_frequency == frequency)
    if active is not None:
        query = query.where(chart_sync_schedule.c.is_active == active)
    if overdue is not None:
        last_ok = stats_store.last_success_subquery()
        query = query.outerjoin(last_ok, last_ok.c.chart_id == chart_sync_schedule.c.chart_id)
        clause = stats_store.overdue_clause(last_ok.c.last_success_at, now, stats_store.cron_graces(conn))
        query = query.where(clause if overdue else not_(clause))
    return query


def page_of_rows(engine: Engine, *, platform: str | None, frequency: str | None, active: bool | None,
                 overdue: bool | None, now: datetime, limit: int, offset: int) -> tuple[list, int]:
    """A filtered page of joined rows (ordered by chart slug) and how many match."""
    with engine.connect() as conn:
        query = filtered_query(conn, platform=platform, frequency=frequency, active=active, overdue=overdue,
                               now=now)
        total = conn.execute(select(func.count()).select_from(query.subquery())).scalar_one()
        rows = conn.execute(query.order_by(chart.c.slug).limit(limit).offset(offset)).all()
    return rows, total
