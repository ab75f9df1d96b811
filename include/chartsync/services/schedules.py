"""Sync schedules: the config table the DAG factory reads, and the service that edits it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime

from sqlalchemy import Engine, delete, func, insert, not_, select, update

from chartsync.store import audit
from chartsync.core import calendar as freqs
from chartsync.store.tables import chart, chart_sync_schedule
from chartsync.core.calendar import Frequency

DAG_ID_PREFIX = "chart_sync__"
_SLUG_OK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,199}$")


class ScheduleError(ValueError):
    """Invalid schedule input; ``field`` names the offending field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class DuplicateSchedule(ScheduleError):
    pass


class ScheduleNotFound(LookupError):
    pass


def dag_id_for(slug: str) -> str:
    if not _SLUG_OK.match(slug):
        raise ScheduleError("slug", f"{slug!r} cannot name a DAG (letters, digits, '_', '-', '.' only)")
    return DAG_ID_PREFIX + slug


@dataclass(frozen=True)
class ScheduleConfig:
    """One validated row of chart_sync_schedule joined with its chart: what a DAG is built from."""

    schedule_id: int
    chart_id: int
    slug: str
    chart_name: str
    platform: str
    country_code: str | None
    chart_frequency: str | None
    frequency: Frequency
    custom_interval_hours: int | None
    cron_expression: str | None
    weekday: int | None
    is_active: bool
    sync_immediately: bool
    sync_historical_data: bool
    fetch_track_metadata: bool
    history_start: date
    deadline_hours: float | None
    created_on: date

    @property
    def dag_id(self) -> str:
        return dag_id_for(self.slug)

    @property
    def period_frequency(self) -> Frequency:
        """The calendar of the chart's periods (custom and cron schedules poll a calendar chart)."""
        if self.frequency.is_calendar:
            return self.frequency
        return freqs.detect_frequency(self.chart_frequency)

    @classmethod
    def from_row(cls, row) -> ScheduleConfig:
        """Validate a raw joined row; raises ScheduleError naming the bad field."""
        try:
            frequency = Frequency.parse(row.sync_frequency or "")
        except ValueError as exc:
            raise ScheduleError("sync_frequency", str(exc)) from None
        hours = row.custom_interval_hours
        if frequency is Frequency.CUSTOM:
            try:
                hours = freqs.validate_custom_hours(hours)
            except ValueError as exc:
                raise ScheduleError("custom_interval_hours", str(exc)) from None
        if frequency is Frequency.CRON:
            _validate_cron(row.cron_expression)
        if row.history_start is None:
            raise ScheduleError("history_start", "missing")
        dag_id_for(row.slug)
        return cls(
            schedule_id=row.id, chart_id=row.chart_id, slug=row.slug, chart_name=row.name,
            platform=row.platform, country_code=row.country_code, chart_frequency=row.frequency,
            frequency=frequency, custom_interval_hours=hours, cron_expression=row.cron_expression,
            weekday=row.publication_weekday, is_active=bool(row.is_active),
            sync_immediately=bool(row.sync_immediately), sync_historical_data=bool(row.sync_historical_data),
            fetch_track_metadata=bool(row.fetch_track_metadata), history_start=row.history_start,
            deadline_hours=row.deadline_hours, created_on=_day(row.created_at),
        )


def _day(value) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, str):  # a snapshot row
        return datetime.fromisoformat(value).date()
    return value


def _validate_cron(expression: str | None) -> None:
    if not expression:
        raise ScheduleError("cron_expression", "required for the cron frequency")
    from croniter import croniter

    if not croniter.is_valid(expression):
        raise ScheduleError("cron_expression", f"{expression!r} is not a valid cron expression")


def _config_query():
    return select(
        chart_sync_schedule, chart.c.slug, chart.c.name, chart.c.platform, chart.c.country_code,
        chart.c.frequency, chart.c.publication_weekday,
    ).join(chart, chart.c.id == chart_sync_schedule.c.chart_id)


def load_rows(engine: Engine, slug: str | None = None) -> list:
    """Raw joined rows (one indexed query); the factory validates each on its own."""
    query = _config_query().order_by(chart.c.slug)
    if slug is not None:
        query = query.where(chart.c.slug == slug)
    with engine.connect() as conn:
        return list(conn.execute(query))


def rows_by_id(engine: Engine, schedule_ids: list[int]) -> list:
    """The joined rows (what ``describe`` takes) of the given schedules, in the order given."""
    if not schedule_ids:
        return []
    with engine.connect() as conn:
        found = {r.id: r for r in conn.execute(_config_query().where(chart_sync_schedule.c.id.in_(schedule_ids)))}
    return [found[i] for i in schedule_ids if i in found]


def add_schedule(
    engine: Engine,
    chart_row,
    *,
    frequency: str | None = None,
    custom_interval_hours: int | None = None,
    cron_expression: str | None = None,
    weekday: int | None = None,
    is_active: bool = True,
    sync_immediately: bool = True,
    sync_historical_data: bool = True,
    fetch_track_metadata: bool = True,
    deadline_hours: float | None = None,
    today: date | None = None,
    actor: str | None = None,
) -> int:
    """Validate and insert a schedule; history_start is fixed here, one year back, aligned.

    With ``actor`` the change is audited in the same transaction.
    """
    freq = _validated_frequency(chart_row, frequency, custom_interval_hours, cron_expression, deadline_hours)
    calendar = freq if freq.is_calendar else freqs.detect_frequency(chart_row.frequency)
    anchor = weekday if weekday is not None else chart_row.publication_weekday
    now = datetime.now(UTC)
    start = freqs.history_start(calendar, today or now.date(), anchor)
    values = {
        "chart_id": chart_row.id, "is_active": is_active, "sync_frequency": freq.value,
        "custom_interval_hours": custom_interval_hours, "cron_expression": cron_expression,
        "sync_immediately": sync_immediately, "sync_historical_data": sync_historical_data,
        "fetch_track_metadata": fetch_track_metadata, "deadline_hours": deadline_hours,
        "history_start": start, "created_at": now, "updated_at": now,
    }
    with engine.begin() as conn:
        if conn.execute(select(chart_sync_schedule.c.id).where(
                chart_sync_schedule.c.chart_id == chart_row.id)).first():
            raise DuplicateSchedule("chart_id", f"chart {chart_row.slug!r} already has a sync schedule")
        schedule_id = conn.execute(insert(chart_sync_schedule).values(**values)).inserted_primary_key[0]
        if actor is not None:
            audit.record(conn, actor=actor, action="create", entity=audit.SCHEDULE, entity_id=schedule_id,
                         after={"id": schedule_id, **values}, now=now)
        return schedule_id


def _validated_frequency(chart_row, frequency: str | None, custom_interval_hours: int | None,
                         cron_expression: str | None, deadline_hours: float | None) -> Frequency:
    """The rules a schedule's settings obey together; raises ScheduleError naming the field."""
    if frequency is None:
        freq = freqs.detect_frequency(chart_row.frequency)
    else:
        try:
            freq = Frequency.parse(frequency)
        except ValueError as exc:
            raise ScheduleError("sync_frequency", str(exc)) from None
    if freq is Frequency.CUSTOM:
        try:
            freqs.validate_custom_hours(custom_interval_hours)
        except ValueError as exc:
            raise ScheduleError("custom_interval_hours", str(exc)) from None
    elif custom_interval_hours is not None:
        raise ScheduleError("custom_interval_hours", "only allowed with the custom frequency")
    if freq is Frequency.CRON:
        _validate_cron(cron_expression)
    if deadline_hours is not None and not 0 < deadline_hours <= 24 * 62:
        raise ScheduleError("deadline_hours", "must be between 0 and 1488 hours")
    dag_id_for(chart_row.slug)
    return freq


def remove_schedule(engine: Engine, chart_id: int, actor: str | None = None) -> None:
    """Delete a chart's schedule (its DAG disappears at the next parse); audited with ``actor``."""
    with engine.begin() as conn:
        before = conn.execute(select(chart_sync_schedule).where(chart_sync_schedule.c.chart_id == chart_id)).first()
        deleted = conn.execute(delete(chart_sync_schedule).where(chart_sync_schedule.c.chart_id == chart_id))
        if deleted.rowcount == 0:
            raise ScheduleNotFound(f"chart {chart_id} has no sync schedule")
        if actor is not None:
            audit.record(conn, actor=actor, action="delete", entity=audit.SCHEDULE, entity_id=before.id,
                         before=dict(before._mapping))


# -- the service the REST API (and later the admin pages) use ----------------------------------------
EDITABLE = ("is_active", "sync_frequency", "custom_interval_hours", "cron_expression", "sync_immediately",
            "sync_historical_data", "fetch_track_metadata", "deadline_hours")
# What a full replacement (PUT) resets an omitted field to; sync_frequency None = detect from the chart.
DEFAULTS = {"is_active": True, "sync_frequency": None, "custom_interval_hours": None, "cron_expression": None,
            "sync_immediately": True, "sync_historical_data": True, "fetch_track_metadata": True,
            "deadline_hours": None}


@dataclass(frozen=True)
class ScheduleChange:
    """The outcome of a write: which schedule, its DAG, and what happens in Airflow next."""

    schedule_id: int
    chart_id: int
    dag_id: str
    dag_in_airflow: bool
    message: str
    changed: bool = True


@dataclass(frozen=True)
class SchedulePage:
    items: list[dict]
    total: int


def schedule_record(row) -> dict:
    """The schedule's own columns (also what the audit log stores as before/after)."""
    return {c.name: getattr(row, c.name) for c in chart_sync_schedule.c}


def get_schedule(engine: Engine, schedule_id: int):
    with engine.connect() as conn:
        row = conn.execute(_config_query().where(chart_sync_schedule.c.id == schedule_id)).first()
    if row is None:
        raise ScheduleNotFound(f"no sync schedule with id {schedule_id}")
    return row


def schedule_of_chart(engine: Engine, chart_id: int):
    """The chart's schedule row (joined with the chart), or None; ChartNotFound for an unknown chart."""
    from chartsync.services import charts

    charts.get_chart(engine, chart_id=chart_id)
    with engine.connect() as conn:
        return conn.execute(_config_query().where(chart_sync_schedule.c.chart_id == chart_id)).first()


def create_schedule(engine: Engine, chart_id: int, *, actor: str, sync_frequency: str | None = None,
                    **options) -> ScheduleChange:
    """Schedule a chart (audited) and align its DAG's paused state with ``is_active``."""
    from chartsync.services import charts

    chart_row = charts.get_chart(engine, chart_id=chart_id)
    freq = _validated_frequency(chart_row, sync_frequency, options.get("custom_interval_hours"),
                                options.get("cron_expression"), options.get("deadline_hours"))
    with engine.connect() as conn:  # refuse before asking the API anything (add_schedule checks again)
        if conn.execute(select(chart_sync_schedule.c.id).where(chart_sync_schedule.c.chart_id == chart_id)).first():
            raise DuplicateSchedule("chart_id", f"chart {chart_row.slug!r} already has a sync schedule")
    weekday = chart_row.publication_weekday
    if weekday is None and freq is Frequency.WEEKLY:
        weekday = _learn_weekday(engine, chart_row)
    schedule_id = add_schedule(engine, chart_row, frequency=sync_frequency, weekday=weekday, actor=actor,
                               **options)
    return _sync_dag(schedule_id, chart_row.id, chart_row.slug, options.get("is_active", True), created=True)


def _learn_weekday(engine: Engine, chart_row) -> int | None:
    """A weekly chart's publication weekday from the API; unknown (Monday anchor) if the API fails."""
    from chartsync.services import charts
    from chartsync.soundcharts.client import SoundchartsClient, SoundchartsError

    try:
        return charts.learn_publication_weekday(engine, SoundchartsClient(), chart_row)
    except SoundchartsError:
        return None


def update_schedule(engine: Engine, schedule_id: int, changes: dict, *, actor: str,
                    replace: bool = False) -> ScheduleChange:
    """Change a schedule (PATCH: the given fields; ``replace`` (PUT): omitted fields take DEFAULTS).

    A frequency change drops the interval or cron expression the new frequency does not use,
    unless they are given too. history_start never moves. Validated before anything is written.
    """
    unknown = set(changes) - set(EDITABLE)
    if unknown:
        raise ScheduleError(min(unknown), "cannot be changed")
    current = get_schedule(engine, schedule_id)
    wanted = _merged_settings(current, changes, replace)
    if wanted["sync_frequency"] == Frequency.WEEKLY.value and current.publication_weekday is None:
        from chartsync.services import charts

        # the weekly cron is anchored on the chart's publication weekday
        _learn_weekday(engine, charts.get_chart(engine, chart_id=current.chart_id))
    with engine.begin() as conn:
        row = conn.execute(_config_query().where(chart_sync_schedule.c.id == schedule_id)).first()
        if row is None:
            raise ScheduleNotFound(f"no sync schedule with id {schedule_id}")
        before = schedule_record(row)
        changed = {k: v for k, v in _merged_settings(row, changes, replace).items() if v != before[k]}
        if changed:
            now = datetime.now(UTC)
            conn.execute(update(chart_sync_schedule).where(chart_sync_schedule.c.id == schedule_id)
                         .values(**changed, updated_at=now))
            audit.record(conn, actor=actor, action="update", entity=audit.SCHEDULE, entity_id=schedule_id,
                         before=before, after=before | changed | {"updated_at": now}, now=now)
    return _sync_dag(schedule_id, row.chart_id, row.slug, wanted["is_active"], changed=bool(changed))


def _merged_settings(row, changes: dict, replace: bool) -> dict:
    """The editable settings after applying ``changes`` to a joined schedule row, validated."""
    current = {k: getattr(row, k) for k in EDITABLE}
    merged = current | (DEFAULTS if replace else {}) | changes
    if merged["sync_frequency"] != current["sync_frequency"]:
        for field, used_by in (("custom_interval_hours", "custom"), ("cron_expression", "cron")):
            if field not in changes and merged["sync_frequency"] != used_by:
                merged[field] = None
    freq = _validated_frequency(row, merged["sync_frequency"], merged["custom_interval_hours"],
                                merged["cron_expression"], merged["deadline_hours"])
    return merged | {"sync_frequency": freq.value}


def delete_schedule(engine: Engine, schedule_id: int, *, actor: str) -> ScheduleChange:
    """Remove a schedule (audited); its DAG is paused now and disappears at the next parse."""
    row = get_schedule(engine, schedule_id)
    remove_schedule(engine, row.chart_id, actor=actor)
    from chartsync.seam import orchestration

    dag_id = dag_id_for(row.slug)
    known = orchestration.set_paused(dag_id, True)
    fate = ("is paused and disappears at the next parse of dags/chart_sync.py; its runs and the synced "
            "rankings are kept" if known else "was never parsed, so Airflow has nothing to remove")
    return ScheduleChange(schedule_id, row.chart_id, dag_id, known, f"{dag_id} {fate}")


def _sync_dag(schedule_id: int, chart_id: int, slug: str, is_active: bool, *, created: bool = False,
              changed: bool = True) -> ScheduleChange:
    """Make the DAG's paused state follow is_active (the factory's default applies to a new DAG)."""
    from chartsync.seam import orchestration

    dag_id = dag_id_for(slug)
    known = orchestration.set_paused(dag_id, not is_active)
    state = "active" if is_active else "paused"
    if known:
        message = f"{dag_id} is {state}" + ("; changes to its schedule apply at the next parse of "
                                            "dags/chart_sync.py" if changed and not created else "")
    else:
        message = (f"{dag_id} appears at the next parse of dags/chart_sync.py (within [dag_processor] "
                   f"min_file_process_interval = {orchestration.parse_interval_seconds()} s) and starts {state}")
    return ScheduleChange(schedule_id, chart_id, dag_id, known, message, changed)


def _filtered_query(*, platform: str | None, frequency: str | None, active: bool | None,
                    overdue: bool | None, now: datetime, conn):
    from chartsync.store import stats

    query = _config_query()
    if platform is not None:
        query = query.where(chart.c.platform == platform)
    if frequency is not None:
        query = query.where(chart_sync_schedule.c.sync_frequency == frequency)
    if active is not None:
        query = query.where(chart_sync_schedule.c.is_active == active)
    if overdue is not None:
        last_ok = stats.last_success_subquery()
        query = query.outerjoin(last_ok, last_ok.c.chart_id == chart_sync_schedule.c.chart_id)
        clause = stats.overdue_clause(last_ok.c.last_success_at, now, stats.cron_graces(conn))
        query = query.where(clause if overdue else not_(clause))
    return query


def list_schedules(engine: Engine, *, platform: str | None = None, frequency: str | None = None,
                   active: bool | None = None, overdue: bool | None = None, limit: int = 50, offset: int = 0,
                   since: datetime | None = None, now: datetime | None = None) -> SchedulePage:
    """A filtered page of schedules (ordered by chart slug) with chart, status, statistics and DAG state."""
    now = now or datetime.now(UTC)
    with engine.connect() as conn:
        query = _filtered_query(platform=platform, frequency=frequency, active=active, overdue=overdue,
                                now=now, conn=conn)
        total = conn.execute(select(func.count()).select_from(query.subquery())).scalar_one()
        rows = conn.execute(query.order_by(chart.c.slug).limit(limit).offset(offset)).all()
    return SchedulePage(describe(engine, rows, now=now, since=since), total)


def describe(engine: Engine, rows: list, *, now: datetime | None = None, since: datetime | None = None) -> list[dict]:
    """Schedule rows -> records with chart, status, statistics and DAG state (a fixed number of queries)."""
    from chartsync.seam import orchestration
    from chartsync.store import stats

    now = now or datetime.now(UTC)
    by_chart = stats.execution_stats(engine, [r.chart_id for r in rows], since=since, now=now)
    dag_ids = {r.id: _safe_dag_id(r.slug) for r in rows}
    dags = orchestration.dag_states([d for d in dag_ids.values() if d])
    items = []
    for r in rows:
        execution = by_chart.get(r.chart_id, stats.ExecutionStats())
        overdue = stats.is_overdue(
            is_active=bool(r.is_active), frequency=r.sync_frequency, last_success_at=execution.last_success_at,
            created_at=r.created_at, now=now, custom_interval_hours=r.custom_interval_hours,
            cron_expression=r.cron_expression)
        items.append(schedule_record(r) | {
            "created_at": stats.aware(r.created_at), "updated_at": stats.aware(r.updated_at),
            "dag_id": dag_ids[r.id],
            "chart": {"id": r.chart_id, "slug": r.slug, "name": r.name, "platform": r.platform,
                      "country_code": r.country_code, "frequency": r.frequency,
                      "publication_weekday": r.publication_weekday},
            "status": stats.schedule_status(is_active=bool(r.is_active), overdue=overdue),
            "overdue": overdue,
            "stats": execution,
            "dag": dags.get(dag_ids[r.id]),
        })
    return items


def _safe_dag_id(slug: str) -> str | None:
    try:
        return dag_id_for(slug)
    except ScheduleError:
        return None


def schedule_detail(engine: Engine, schedule_id: int, history: int = 20) -> dict:
    """One schedule described, with its recent execution history."""
    from chartsync.store import stats

    row = get_schedule(engine, schedule_id)
    return describe(engine, [row])[0] | {"executions": stats.recent_executions(engine, row.chart_id, history)}


def status(engine: Engine, chart_id: int) -> dict:
    """A chart's sync status: schedule, latest execution, next run, overdue, coverage (if audited)."""
    from chartsync.store import stats

    row = schedule_of_chart(engine, chart_id)
    latest = stats.recent_executions(engine, chart_id, 1)
    result = {"chart_id": chart_id, "schedule": None, "status": "not-scheduled", "overdue": False,
              "latest_execution": latest[0] if latest else None, "next_run_at": None, "dag": None,
              "coverage": stats.coverage(engine, chart_id)}
    if row is None:
        return result
    item = describe(engine, [row])[0]
    dag = item["dag"]
    return result | {
        "schedule": item, "status": item["status"], "overdue": item["overdue"], "dag": dag,
        "next_run_at": dag.next_dagrun if dag is not None and not dag.is_paused else None,
    }


@dataclass(frozen=True)
class TriggerResult:
    chart_id: int
    dag_id: str
    run_id: str
    state: str
    period: date | None
    dag_is_paused: bool


def trigger(engine: Engine, chart_id: int, period: date | None, *, actor: str) -> TriggerResult:
    """A manual run of the chart's DAG now, for ``period`` (else the latest published one); audited."""
    from chartsync.seam import orchestration

    row = schedule_of_chart(engine, chart_id)
    if row is None:
        raise ScheduleNotFound(f"chart {chart_id} has no sync schedule (add one first)")
    if period is not None and period > datetime.now(UTC).date():
        raise ScheduleError("period", f"{period} is in the future")
    dag_id = dag_id_for(row.slug)
    run_id, state = orchestration.trigger(dag_id, period, actor, note=f"triggered through the chart-sync API by {actor}")
    dag = orchestration.dag_state(dag_id)
    result = TriggerResult(chart_id, dag_id, run_id, state, period, bool(dag and dag.is_paused))
    with engine.begin() as conn:
        audit.record(conn, actor=actor, action="trigger", entity=audit.CHART, entity_id=chart_id,
                     after={"dag_id": dag_id, "run_id": run_id, "state": state, "period": period})
    return result


BULK_ACTIONS = ("add", "remove", "activate", "deactivate", "trigger")


@dataclass(frozen=True)
class BulkItem:
    chart_id: int
    outcome: str  # done, unchanged, not-found, conflict, invalid, dag-not-parsed
    message: str
    schedule_id: int | None = None
    run_id: str | None = None


def bulk(engine: Engine, action: str, chart_ids: list[int], *, actor: str, options: dict | None = None) -> list[BulkItem]:
    """Apply one action to many charts; each chart succeeds or fails on its own (reported per item)."""
    from chartsync.seam import orchestration
    from chartsync.services.charts import ChartNotFound

    if action not in BULK_ACTIONS:
        raise ScheduleError("action", f"unknown action {action!r} (expected one of: {', '.join(BULK_ACTIONS)})")
    items = []
    for chart_id in chart_ids:
        try:
            items.append(_bulk_one(engine, action, chart_id, actor, options or {}))
        except (ChartNotFound, ScheduleNotFound) as exc:
            items.append(BulkItem(chart_id, "not-found", str(exc)))
        except DuplicateSchedule as exc:
            items.append(BulkItem(chart_id, "conflict", exc.message))
        except ScheduleError as exc:
            items.append(BulkItem(chart_id, "invalid", str(exc)))
        except orchestration.DagNotParsedYet as exc:
            items.append(BulkItem(chart_id, "dag-not-parsed", str(exc)))
        except orchestration.RunAlreadyExists as exc:
            items.append(BulkItem(chart_id, "conflict", str(exc)))
    return items


def _bulk_one(engine: Engine, action: str, chart_id: int, actor: str, options: dict) -> BulkItem:
    if action == "add":
        change = create_schedule(engine, chart_id, actor=actor, **options)
        return BulkItem(chart_id, "done", change.message, change.schedule_id)
    if action == "trigger":
        run = trigger(engine, chart_id, None, actor=actor)
        return BulkItem(chart_id, "done", f"{run.dag_id}: run {run.run_id} {run.state}", run_id=run.run_id)
    row = schedule_of_chart(engine, chart_id)
    if row is None:
        raise ScheduleNotFound(f"chart {chart_id} has no sync schedule")
    if action == "remove":
        change = delete_schedule(engine, row.id, actor=actor)
    else:
        change = update_schedule(engine, row.id, {"is_active": action == "activate"}, actor=actor)
    return BulkItem(chart_id, "done" if change.changed else "unchanged", change.message, row.id)
