"""A sync schedule: its settings, the ONE validator they pass, and the config a DAG is built from.

Every door (the ``chartsync`` CLI, the REST API's schemas, the admin pages' forms) and the DAG
factory check a schedule here, so the same bad input gets the same message everywhere, naming
the field by the label a user sees (``ScheduleError.label``). Pure: no Airflow, no database.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from croniter import croniter

from chartsync.core import calendar
from chartsync.core.calendar import Frequency
from chartsync.settings import DAG_ID_PREFIX

MAX_CUSTOM_HOURS = 24 * 31
MAX_DEADLINE_HOURS = 24 * 62
MAX_CRON_LENGTH = 100
SLUG_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,199}$"
_SLUG_OK = re.compile(SLUG_PATTERN)

# The label each field goes by in the pages, the CLI's messages and the API's 422 messages.
LABELS = {
    "chart_id": "Chart",
    "slug": "Chart",
    "is_active": "Active",
    "sync_frequency": "Sync frequency",
    "custom_interval_hours": "Interval (hours)",
    "cron_expression": "Cron expression",
    "sync_immediately": "Sync immediately",
    "sync_historical_data": "Sync the past year",
    "fetch_track_metadata": "Fetch track metadata",
    "deadline_hours": "Deadline (hours)",
    "history_start": "History start",
    "period": "Period",
    "action": "Action",
}
# What a user may change, and what a full replacement (PUT) resets an omitted field to
# (sync_frequency None = detect it from the chart).
EDITABLE = ("is_active", "sync_frequency", "custom_interval_hours", "cron_expression", "sync_immediately",
            "sync_historical_data", "fetch_track_metadata", "deadline_hours")
DEFAULTS = {"is_active": True, "sync_frequency": None, "custom_interval_hours": None, "cron_expression": None,
            "sync_immediately": True, "sync_historical_data": True, "fetch_track_metadata": True,
            "deadline_hours": None}


class ScheduleError(ValueError):
    """Invalid schedule input; ``field`` names the offending field, ``label`` says it the user's way."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.label = LABELS.get(field, field)
        self.message = message
        super().__init__(f"{self.label}: {message}")


class DuplicateSchedule(ScheduleError):
    pass


class ScheduleNotFound(LookupError):
    pass


# -- one check per field ------------------------------------------------------------------------------
def check_frequency(value: str | None) -> Frequency:
    try:
        return Frequency.parse(value or "")
    except ValueError as exc:
        raise ScheduleError("sync_frequency", str(exc)) from None


def check_custom_hours(hours: Any) -> int:
    if hours is None:
        raise ScheduleError("custom_interval_hours", "required for the custom frequency")
    if not isinstance(hours, int) or isinstance(hours, bool):
        raise ScheduleError("custom_interval_hours", "must be a whole number of hours")
    if not 1 <= hours <= MAX_CUSTOM_HOURS:
        raise ScheduleError("custom_interval_hours", f"must be between 1 and {MAX_CUSTOM_HOURS}")
    return hours


def check_cron(expression: Any) -> str:
    if not expression:
        raise ScheduleError("cron_expression", "required for the cron frequency")
    if not isinstance(expression, str) or len(expression) > MAX_CRON_LENGTH:
        raise ScheduleError("cron_expression", f"must be text of at most {MAX_CRON_LENGTH} characters")
    if not croniter.is_valid(expression):
        raise ScheduleError("cron_expression", f"{expression!r} is not a valid cron expression")
    return expression


def check_deadline_hours(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not 0 < value <= MAX_DEADLINE_HOURS:
        raise ScheduleError("deadline_hours", f"must be a number of hours above 0 and at most {MAX_DEADLINE_HOURS}")
    return float(value)


def check_slug(slug: str) -> str:
    if not isinstance(slug, str) or not _SLUG_OK.match(slug):
        raise ScheduleError("slug", f"{slug!r} cannot name a DAG (letters, digits, '_', '-', '.' only)")
    return slug


def dag_id_for(slug: str) -> str:
    return DAG_ID_PREFIX + check_slug(slug)


def slug_of(dag_id: str | None) -> str | None:
    """The chart slug a chart DAG id names; None for any other DAG id."""
    if dag_id and dag_id.startswith(DAG_ID_PREFIX):
        return dag_id[len(DAG_ID_PREFIX):]
    return None


def validate_settings(*, slug: str | None, chart_frequency: str | None, sync_frequency: str | None,
                      custom_interval_hours: Any = None, cron_expression: Any = None,
                      deadline_hours: Any = None) -> Frequency:
    """The rules a schedule's settings obey together; the frequency they come to.

    ``sync_frequency`` None means: detect it from the chart's own (else weekly); ``slug`` None
    checks the settings alone (a form, before the charts are known). Raises ScheduleError
    naming the first bad field.
    """
    freq = calendar.detect_frequency(chart_frequency) if sync_frequency is None else check_frequency(sync_frequency)
    if freq is Frequency.CUSTOM:
        check_custom_hours(custom_interval_hours)
    elif custom_interval_hours is not None:
        raise ScheduleError("custom_interval_hours", "only goes with the custom frequency")
    if freq is Frequency.CRON:
        check_cron(cron_expression)
    check_deadline_hours(deadline_hours)
    if slug is not None:
        check_slug(slug)
    return freq


def merged_settings(current: dict, changes: dict, *, replace: bool = False) -> dict:
    """The editable settings after ``changes`` (PUT: ``replace``, omitted fields take DEFAULTS).

    A frequency change drops the interval or cron expression the new frequency does not use,
    unless they are given too.
    """
    unknown = set(changes) - set(EDITABLE)
    if unknown:
        raise ScheduleError(min(unknown), "cannot be changed")
    merged = current | (DEFAULTS if replace else {}) | changes
    if merged["sync_frequency"] != current["sync_frequency"]:
        for name, used_by in (("custom_interval_hours", Frequency.CUSTOM), ("cron_expression", Frequency.CRON)):
            if name not in changes and merged["sync_frequency"] != used_by.value:
                merged[name] = None
    return merged


# -- the config a DAG is built from -----------------------------------------------------------------------
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
        return calendar.detect_frequency(self.chart_frequency)

    @property
    def dag_start(self) -> date:
        """The first period the chart's DAG has (its ``start_date``): the fixed history start when it
        syncs history, syncs immediately (the newest period, before the creation day) or is not a
        calendar schedule; else the period it was created in, so its first run is the next tick."""
        if self.sync_historical_data or self.sync_immediately or not self.frequency.is_calendar:
            return self.history_start
        return calendar.align(self.frequency, self.created_on, self.weekday)

    @classmethod
    def from_row(cls, row) -> ScheduleConfig:
        """Validate a raw joined row (the same rules as every door); raises ScheduleError naming the field."""
        frequency = validate_settings(
            slug=row.slug, chart_frequency=row.frequency, sync_frequency=row.sync_frequency or "",
            custom_interval_hours=row.custom_interval_hours, cron_expression=row.cron_expression,
            deadline_hours=row.deadline_hours)
        if row.history_start is None:
            raise ScheduleError("history_start", "missing")
        return cls(
            schedule_id=row.id, chart_id=row.chart_id, slug=row.slug, chart_name=row.name,
            platform=row.platform, country_code=row.country_code, chart_frequency=row.frequency,
            frequency=frequency, custom_interval_hours=row.custom_interval_hours,
            cron_expression=row.cron_expression, weekday=row.publication_weekday, is_active=bool(row.is_active),
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
