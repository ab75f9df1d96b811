"""Sync schedules: the config table the DAG factory reads, and the service that edits it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime

from sqlalchemy import Engine, delete, insert, select

from chartsync import audit
from chartsync import frequency as freqs
from chartsync.db.tables import chart, chart_sync_schedule
from chartsync.frequency import Frequency

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
    values = dict(
        chart_id=chart_row.id, is_active=is_active, sync_frequency=freq.value,
        custom_interval_hours=custom_interval_hours, cron_expression=cron_expression,
        sync_immediately=sync_immediately, sync_historical_data=sync_historical_data,
        fetch_track_metadata=fetch_track_metadata, deadline_hours=deadline_hours,
        history_start=start, created_at=now, updated_at=now,
    )
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
