"""Request and response schemas of the chart-sync REST API (pydantic v2).

Requests forbid unknown fields. A schedule's fields are checked by the one validator
(``chartsync.core.schedule``): its limits go into the OpenAPI spec, and its messages, naming the
field by its label, are the 422's ``msg``, word for word what the CLI and the pages say.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from chartsync.core import schedule
from chartsync.core.calendar import Frequency
from chartsync.core.schedule import MAX_CRON_LENGTH, MAX_CUSTOM_HOURS, MAX_DEADLINE_HOURS, SLUG_PATTERN, ScheduleError
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from chart_sync_admin.door import MAX_ID


def checked(check: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """A core check as a pydantic validator: its ScheduleError becomes the 422 message, unchanged."""

    def validate(value: Any) -> Any:
        if value is None:
            return value
        try:
            return check(value)
        except ScheduleError as exc:
            raise PydanticCustomError("schedule_field", "{message}", {"message": str(exc)}) from None

    return validate


FrequencyName = Annotated[str, AfterValidator(checked(lambda value: schedule.check_frequency(value).value)),
                          Field(json_schema_extra={"enum": [f.value for f in Frequency]})]
Id = Annotated[StrictInt, Field(ge=1, le=MAX_ID)]
Hours = Annotated[StrictInt, AfterValidator(checked(schedule.check_custom_hours)),
                  Field(json_schema_extra={"minimum": 1, "maximum": MAX_CUSTOM_HOURS},
                        description=f"1 to {MAX_CUSTOM_HOURS} hours")]
Cron = Annotated[str, AfterValidator(checked(schedule.check_cron)),
                 Field(json_schema_extra={"minLength": 1, "maxLength": MAX_CRON_LENGTH}, examples=["0 6 * * *"])]
# BeforeValidator: NaN, Infinity and 1e999 reach the validator (and its message) instead of pydantic's own
DeadlineHours = Annotated[float, BeforeValidator(checked(schedule.check_deadline_hours)),
                          Field(json_schema_extra={"exclusiveMinimum": 0, "maximum": MAX_DEADLINE_HOURS})]
Slug = Annotated[str, Field(pattern=SLUG_PATTERN, examples=["spotify-top-200-global-daily"])]


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Response(BaseModel):
    model_config = ConfigDict(from_attributes=True)


# -- requests -------------------------------------------------------------------------------------
class ScheduleSettings(Request):
    """A schedule's settings; omitted ones take these defaults (sync_frequency: from the chart, else weekly)."""

    is_active: StrictBool = True
    sync_frequency: FrequencyName | None = None
    custom_interval_hours: Hours | None = None
    cron_expression: Cron | None = None
    sync_immediately: StrictBool = True
    sync_historical_data: StrictBool = True
    fetch_track_metadata: StrictBool = True
    deadline_hours: DeadlineHours | None = None


class ScheduleCreate(ScheduleSettings):
    chart_id: Id


class ScheduleReplace(ScheduleSettings):
    """PUT: the whole configuration; omitted fields are reset to their defaults."""


_NOT_NULLABLE = ("is_active", "sync_frequency", "sync_immediately", "sync_historical_data", "fetch_track_metadata")


class SchedulePatch(Request):
    """PATCH: only the fields given change (null clears custom_interval_hours, cron_expression, deadline_hours)."""

    is_active: StrictBool | None = None
    sync_frequency: FrequencyName | None = None
    custom_interval_hours: Hours | None = None
    cron_expression: Cron | None = None
    sync_immediately: StrictBool | None = None
    sync_historical_data: StrictBool | None = None
    fetch_track_metadata: StrictBool | None = None
    deadline_hours: DeadlineHours | None = None

    @field_validator(*_NOT_NULLABLE)
    @classmethod
    def _not_null(cls, value):
        if value is None:
            raise ValueError("may not be null")
        return value


class TriggerRequest(Request):
    chart_id: Id
    period: date | None = Field(None, description="the chart period to sync, a period start inside the schedule's "
                                "history window and behind its catchup; default: the latest published one")
    snap: StrictBool = Field(False, description="a day inside a period syncs that period (else 422 naming the "
                             "nearest period starts)")


BulkAction = Literal["add", "remove", "activate", "deactivate", "trigger"]


class BulkRequest(Request):
    action: BulkAction
    chart_ids: Annotated[list[Id], Field(min_length=1, max_length=500)]
    options: ScheduleSettings | None = Field(None, description="settings of the new schedules (action add only)")

    @model_validator(mode="after")
    def _options_only_for_add(self):
        if self.options is not None and self.action != "add":
            raise ValueError("options only go with the add action")
        return self


class HealRequest(Request):
    slugs: Annotated[list[Slug], Field(max_length=500)] | None = Field(
        None, description="charts to heal; default: every chart with gaps")


# -- responses -------------------------------------------------------------------------------------
T = TypeVar("T")


class Page(Response, Generic[T]):
    items: list[T]
    total: int
    page: int
    page_size: int
    limit: int
    offset: int


class ChartOut(Response):
    id: int
    slug: str
    name: str
    platform: str
    country_code: str | None
    frequency: str | None
    publication_weekday: int | None


class ExecutionStatsOut(Response):
    total_executions: int
    successful_executions: int
    failed_executions: int
    skipped_executions: int
    success_rate: float | None = Field(description="successful / (successful + failed)")
    average_duration_seconds: float | None
    last_execution_at: datetime | None
    last_status: str | None
    last_error: str | None
    last_success_at: datetime | None
    freshness_seconds: float | None = Field(description="time since the last successful sync")


class DagOut(Response):
    dag_id: str
    is_paused: bool
    next_dagrun: datetime | None = Field(description="when Airflow creates the next scheduled run")
    last_run_state: str | None


class ScheduleOut(Response):
    id: int
    chart_id: int
    dag_id: str | None
    is_active: bool
    sync_frequency: str
    custom_interval_hours: int | None
    cron_expression: str | None
    sync_immediately: bool
    sync_historical_data: bool
    fetch_track_metadata: bool
    deadline_hours: float | None
    history_start: date
    created_at: datetime
    updated_at: datetime
    chart: ChartOut
    status: Literal["active", "overdue", "inactive"]
    overdue: bool
    stats: ExecutionStatsOut
    dag: DagOut | None = Field(description="Airflow's view of the DAG; null until it is parsed")


class ExecutionOut(Response):
    id: int
    dag_id: str
    run_id: str
    try_number: int
    period: date | None
    status: str
    started_at: datetime
    completed_at: datetime | None
    duration_seconds: float | None
    rankings_created: int
    rankings_updated: int
    entries_written: int
    tracks_created: int
    tracks_updated: int
    api_requests: int
    error: str | None


class PeriodHistoryOut(Response):
    period: date | None = Field(description="the period synced; null for a try that failed before it knew it")
    status: str = Field(description="the latest try's status")
    tries: int = Field(description="every try of every run that synced the period")
    first_stored_at: datetime | None = Field(description="when a try first stored the period")
    dag_id: str
    run_id: str = Field(description="the Airflow run of the latest try")
    latest: ExecutionOut
    attempts: list[ExecutionOut] = Field(description="every try, newest first")


class ScheduleDetailOut(ScheduleOut):
    executions: list[ExecutionOut]
    coverage: CoverageOut | None


class EstimateOut(Response):
    """What work would cost of the Soundcharts API quota: periods x pages (pages from the chart's size)."""

    calls: int = Field(description="API calls the work costs, about")
    remaining: int | None = Field(description="the quota left when last seen; null: never seen")
    reserve: int = Field(description="calls to keep in hand (CHARTSYNC_QUOTA_RESERVE)")
    leaves: int | None = Field(description="remaining - calls; null when the quota is not known")
    warning: str | None = Field(description="set when the work would leave less than the reserve")


class EstimateTextOut(EstimateOut):
    text: str = Field(description="the estimate in words, as the pages and the CLI say it")


class ScheduleWriteOut(Response):
    schedule: ScheduleOut
    dag_id: str
    dag_in_airflow: bool = Field(description="false: the DAG appears at the next parse of its DAG file "
                                             "(dags/chart_sync_NN.py, named in `message`)")
    changed: bool
    message: str


class ScheduleCreateOut(ScheduleWriteOut):
    estimate: EstimateOut | None = Field(None, description="the calls the first sync and the history cost")


class ScheduleDeleteOut(Response):
    schedule_id: int
    chart_id: int
    dag_id: str
    message: str


class TriggerOut(Response):
    chart_id: int
    dag_id: str
    run_id: str
    state: str
    period: date | None
    dag_is_paused: bool
    created: bool = Field(description="false: the period's queued or running run, returned (HTTP 200) instead of "
                          "a second one")
    message: str


class CoverageOut(Response):
    """Computed when asked, from the expected periods and the stored rankings."""

    window_start: date
    window_end: date
    expected_periods: int
    stored_periods: int
    gap_periods: int
    coverage_percent: float
    calendar_only: list | None
    api_only: list | None
    audited_at: datetime | None = Field(description="when the gap audit last asked the API which periods it "
                                                     "published; null: the calendar alone says what is expected")


class StatusOut(Response):
    chart_id: int
    status: Literal["active", "overdue", "inactive", "not-scheduled"]
    overdue: bool
    schedule: ScheduleOut | None
    latest_execution: ExecutionOut | None
    next_run_at: datetime | None
    dag: DagOut | None
    coverage: CoverageOut | None


class BulkItemOut(Response):
    chart_id: int
    outcome: Literal["done", "unchanged", "not-found", "conflict", "invalid", "dag-not-parsed"]
    message: str
    schedule_id: int | None = None
    run_id: str | None = None


class BulkOut(Response):
    action: BulkAction
    summary: dict[str, int]
    results: list[BulkItemOut]
    estimate: EstimateOut | None = Field(None, description="add: what the new schedules' first syncs and "
                                         "history cost, estimated before the add (charts it refuses left out)")


class GapOut(Response):
    chart_id: int
    slug: str
    dag_id: str
    start: date
    end: date
    periods: int
    backfill_command: str
    heal: Literal["running", "queued"] | None = Field(
        None, description="running: a heal's backfill covers it now; queued: it starts when the one before completes")
    backfill_id: int | None = None


class CatchupWaitOut(Response):
    """Missing periods Airflow's own scheduling creates in turn: not gaps, no backfill needed."""

    chart_id: int
    slug: str
    front: date = Field(description="the period of the DAG's next scheduled run")
    first: date
    last: date
    periods: int
    message: str


class GapsOut(Response):
    items: list[GapOut] = Field(description="gap ranges behind each DAG's catchup front: a backfill closes them")
    total: int
    waiting: list[CatchupWaitOut] = Field(description="per chart, the missing periods its catchup creates in turn")


class HealResultOut(Response):
    slug: str
    dag_id: str
    start: date | None = Field(description="created: the backfill's first period; else the first gap's")
    end: date | None = Field(description="created: the backfill's last period; else the last gap's")
    status: str = Field(description="created, already-running, nothing-to-heal, dag-not-parsed, unsupported or "
                                    "refused (Airflow refused this chart's backfill: the message says why)")
    backfill_id: int | None
    message: str
    queued: list[GapOut] = Field(description="gap ranges that start, one after the other, when the backfill completes")
    waiting: CatchupWaitOut | None = Field(None, description="what the heal left to the chart's catchup")
    estimate: EstimateOut | None = Field(None, description="created, already-running: the calls its gap "
                                         "periods (backfilled now or queued) cost")


class HealOut(Response):
    results: list[HealResultOut]


class OverallStatsOut(Response):
    schedules: int
    active_schedules: int
    overdue_schedules: int
    window_start: datetime | None
    executions: ExecutionStatsOut


class StatsOut(Response):
    overall: OverallStatsOut
    schedules: Page[ScheduleOut]


class AlertOut(Response):
    id: int
    kind: str
    chart_id: int | None
    chart: str | None
    chart_name: str | None
    schedule_id: int | None
    dag_id: str | None
    run_id: str | None
    period: date | None
    message: str
    channels: dict
    created_at: datetime
    links: dict


class AuditOut(Response):
    id: int
    actor: str
    action: str
    entity: str
    entity_id: int | None
    before: dict | None
    after: dict | None
    created_at: datetime


class FlagNoteOut(Response):
    flag: str
    text: str = Field(description="the measure that raised the flag, e.g. '143 of 200 entries'")


class QualityChecksOut(Response):
    """A ranking's soft-check measures (null: could not be measured)."""

    entry_count: int
    expected_count: int | None = Field(description="the chart's published size")
    missing_positions: int = Field(description="holes in 1..the highest position")
    no_streams_share: float | None = Field(description="entries without streams, on a platform that has them")
    new_share: float = Field(description="entries new to the chart this period")
    usual_new_share: float | None = Field(description="the chart's mean new_share over its recent rankings")
    previous_checked: int = Field(description="entries with a previous position")
    previous_mismatches: int | None = Field(description="... that the previous stored period contradicts")


class RankingQualityOut(Response):
    ranking_id: int | None
    period: date
    status: Literal["flagged", "clean", "not-checked"] = Field(
        description="not-checked: stored before the checks existed")
    flags: list[str]
    notes: list[FlagNoteOut] = Field(description="each flag with the measure that raised it")
    checked_at: datetime | None
    checks: QualityChecksOut | None


class QualitySummaryOut(Response):
    rankings_stored: int
    rankings_checked: int = Field(description="stored with their checks (older rankings have none)")
    rankings_flagged: int
    flag_counts: dict[str, int] = Field(description="rankings per flag, every flag listed")
    last_checked_at: datetime | None
    last_flagged_period: date | None


class QualityOut(Response):
    schedule_id: int
    chart_id: int
    slug: str
    summary: QualitySummaryOut
    rankings: Page[RankingQualityOut] = Field(description="the flagged rankings, newest period first")


class ChartSpendOut(Response):
    chart_id: int | None = Field(description="null: calls tied to no chart (track metadata, audience, chart import)")
    slug: str | None
    calls: int = Field(description="calls spent in the last 30 UTC days")


class QuotaOut(Response):
    remaining: int | None = Field(description="the quota left when last seen (x-quota-remaining); null: never seen")
    seen_at: datetime | None = Field(description="when the API last said it")
    spent_24h: int = Field(description="calls chart-sync spent today (UTC day)")
    spent_30d: int = Field(description="calls chart-sync spent in the last 30 UTC days, today included")
    burn_per_day: float | None = Field(description="calls a day, averaged over the recorded days of the last 30")
    runs_out_on: date | None = Field(description="the day the quota runs out at this burn rate")
    reserve: int = Field(description="calls to keep in hand (CHARTSYNC_QUOTA_RESERVE, default 1,000)")
    below_reserve: bool
    state: str = Field(description="in plain words: never seen, below the reserve, above the reserve")
    charts: list[ChartSpendOut] = Field(description="the charts that spent most in the last 30 days, most first")
