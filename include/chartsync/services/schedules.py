"""Sync schedules: the one service behind every door (CLI, REST API, admin pages).

Every write validates with ``core.schedule`` before anything is written, commits the row with
an audit row naming the actor, then makes the DAG's paused state follow ``is_active`` once the
DAG exists in Airflow. The read side describes schedules with their chart, status, statistics
and DAG state in a fixed number of queries.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, date, datetime

from sqlalchemy import Engine

from chartsync.core import calendar
from chartsync.core.calendar import Frequency
from chartsync.core.gaps import is_next_in_catchup, triggerable_period
from chartsync.core.paging import Page, PageRequest
from chartsync.core.quota import Estimate
from chartsync.core.rules import SCHEDULE_STATUSES, is_overdue, schedule_status
from chartsync.core.schedule import (
    DuplicateSchedule,
    ScheduleConfig,
    ScheduleError,
    ScheduleNotFound,
    dag_id_for,
    merged_settings,
    validate_settings,
)
from chartsync.core.timestamps import as_utc
from chartsync.seam import config as airflow_config
from chartsync.seam import orchestration
from chartsync.services import budget, charts, gaps
from chartsync.settings import chart_dag_file
from chartsync.store import audit, pages
from chartsync.store import gaps as gap_store
from chartsync.store import schedules as schedule_store
from chartsync.store import stats as stats_store
from chartsync.store.charts import ChartNotFound

__all__ = [
    "BulkItem", "DuplicateSchedule", "ScheduleChange", "ScheduleConfig", "ScheduleError", "ScheduleNotFound",
    "TriggerResult", "active_configs", "add_estimate", "add_schedule", "bulk", "create_schedule", "dag_id_for", "delete_schedule", "describe",
    "get_schedule", "list_schedules", "load_rows", "rows_by_id", "schedule_detail", "schedule_of_chart",
    "schedule_table", "set_active", "status", "trigger", "update_schedule",
]

load_rows = schedule_store.load_rows
rows_by_id = schedule_store.rows_by_id


@dataclass(frozen=True)
class ScheduleChange:
    """The outcome of a write: which schedule, its DAG, and what happens in Airflow next."""

    schedule_id: int
    chart_id: int
    slug: str
    dag_id: str
    dag_in_airflow: bool
    message: str
    changed: bool = True
    estimate: Estimate | None = None  # a new schedule: the API calls its first sync and history cost


# -- writes ----------------------------------------------------------------------------------------------
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
    """Validate and insert a schedule row; history_start is fixed here, one year back, aligned.

    The row only: ``create_schedule`` is what the doors call (it also learns the weekday and sets
    the DAG's paused state). With ``actor`` the row is audited in the same transaction.
    """
    freq = validate_settings(slug=chart_row.slug, chart_frequency=chart_row.frequency, sync_frequency=frequency,
                             custom_interval_hours=custom_interval_hours, cron_expression=cron_expression,
                             deadline_hours=deadline_hours)
    period_calendar = freq if freq.is_calendar else calendar.detect_frequency(chart_row.frequency)
    anchor = weekday if weekday is not None else chart_row.publication_weekday
    now = datetime.now(UTC)
    values = {
        "chart_id": chart_row.id, "is_active": is_active, "sync_frequency": freq.value,
        "custom_interval_hours": custom_interval_hours, "cron_expression": cron_expression,
        "sync_immediately": sync_immediately, "sync_historical_data": sync_historical_data,
        "fetch_track_metadata": fetch_track_metadata, "deadline_hours": deadline_hours,
        "history_start": calendar.history_start(period_calendar, today or now.date(), anchor),
        "created_at": now, "updated_at": now,
    }
    with engine.begin() as conn:
        if schedule_store.has_schedule(conn, chart_row.id):
            raise DuplicateSchedule("chart_id", f"chart {chart_row.slug!r} already has a sync schedule")
        return schedule_store.insert_schedule(conn, values, actor=actor, now=now)


def create_schedule(engine: Engine, chart_id: int, *, actor: str, sync_frequency: str | None = None,
                    **options) -> ScheduleChange:
    """Schedule a chart (audited) and align its DAG's paused state with ``is_active``."""
    chart_row = charts.get_chart(engine, chart_id=chart_id)
    freq = validate_settings(slug=chart_row.slug, chart_frequency=chart_row.frequency,
                             sync_frequency=sync_frequency,
                             custom_interval_hours=options.get("custom_interval_hours"),
                             cron_expression=options.get("cron_expression"),
                             deadline_hours=options.get("deadline_hours"))
    with engine.connect() as conn:  # refuse before asking the API anything (add_schedule checks again)
        if schedule_store.has_schedule(conn, chart_id):
            raise DuplicateSchedule("chart_id", f"chart {chart_row.slug!r} already has a sync schedule")
    weekday = chart_row.publication_weekday
    if weekday is None and freq is Frequency.WEEKLY:  # the weekly cron is anchored on the publication weekday
        weekday = charts.weekday_or_none(engine, chart_row)
    cost = budget.estimate(engine, {chart_id: new_schedule_periods(
        chart_row, freq, weekday, history=options.get("sync_historical_data", True),
        immediately=options.get("sync_immediately", True))})
    schedule_id = add_schedule(engine, chart_row, frequency=sync_frequency, weekday=weekday, actor=actor,
                               **options)
    change = _follow_in_airflow(schedule_id, chart_row.id, chart_row.slug, options.get("is_active", True),
                                created=True)
    return replace(change, estimate=cost)


def new_schedule_periods(chart_row, freq: Frequency, weekday: int | None, *, history: bool, immediately: bool,
                         now: datetime | None = None) -> int:
    """Periods a new schedule syncs at once: with history, a year of the chart's periods (from the history
    start ``add_schedule`` fixes to the latest complete period); else the newest period if it syncs
    immediately; else none (its first run is the next period's)."""
    now = now or datetime.now(UTC)
    period_calendar = freq if freq.is_calendar else calendar.detect_frequency(chart_row.frequency)
    if history:
        first = calendar.history_start(period_calendar, now.date(), weekday)
        last = calendar.latest_complete_period(period_calendar, now, weekday).start
        return calendar.count_periods_between(period_calendar, first, last, weekday)
    return 1 if immediately else 0


def add_estimate(engine: Engine, chart_ids: list[int], options: dict | None = None,
                 now: datetime | None = None) -> Estimate:
    """What adding these charts with ``options`` (a bulk add's settings) would cost, before anything is
    added: charts unknown, already scheduled or with invalid settings are left out, as the add refuses them."""
    options = options or {}
    periods = {}
    for chart_id in chart_ids:
        try:
            row = charts.get_chart(engine, chart_id=chart_id)
        except ChartNotFound:
            continue
        with engine.connect() as conn:
            if schedule_store.has_schedule(conn, row.id):
                continue
        try:
            freq = validate_settings(slug=row.slug, chart_frequency=row.frequency,
                                     sync_frequency=options.get("sync_frequency"),
                                     custom_interval_hours=options.get("custom_interval_hours"),
                                     cron_expression=options.get("cron_expression"),
                                     deadline_hours=options.get("deadline_hours"))
        except ScheduleError:
            continue
        periods[row.id] = new_schedule_periods(row, freq, row.publication_weekday,
                                               history=options.get("sync_historical_data", True),
                                               immediately=options.get("sync_immediately", True), now=now)
    return budget.estimate(engine, periods)


def update_schedule(engine: Engine, schedule_id: int, changes: dict, *, actor: str,
                    replace: bool = False) -> ScheduleChange:
    """Change a schedule (PATCH: the given fields; ``replace`` (PUT): omitted fields take defaults).

    history_start never moves. Validated before anything is written.
    """
    current = get_schedule(engine, schedule_id)
    wanted = _validated(current, changes, replace)
    if wanted["sync_frequency"] == Frequency.WEEKLY.value and current.publication_weekday is None:
        charts.weekday_or_none(engine, charts.get_chart(engine, chart_id=current.chart_id))
    with engine.begin() as conn:
        row = schedule_store.get_row(conn, schedule_id)
        if row is None:
            raise ScheduleNotFound(f"no sync schedule with id {schedule_id}")
        before = schedule_store.record(row)
        changed = {k: v for k, v in _validated(row, changes, replace).items() if v != before[k]}
        if changed:
            schedule_store.update_schedule(conn, schedule_id, before, changed, actor=actor, now=datetime.now(UTC))
    return _follow_in_airflow(schedule_id, row.chart_id, row.slug, wanted["is_active"], changed=bool(changed))


def set_active(engine: Engine, schedule_id: int, active: bool, *, actor: str) -> ScheduleChange:
    """Activate or deactivate a schedule: the row, the audit log and the DAG's paused state."""
    return update_schedule(engine, schedule_id, {"is_active": active}, actor=actor)


def delete_schedule(engine: Engine, schedule_id: int, *, actor: str) -> ScheduleChange:
    """Remove a schedule (audited); its DAG is paused now and disappears at the next parse."""
    row = get_schedule(engine, schedule_id)
    if schedule_store.delete_schedule(engine, row.chart_id, actor=actor) is None:
        raise ScheduleNotFound(f"chart {row.slug!r} has no sync schedule")
    dag_id = dag_id_for(row.slug)
    known = orchestration.set_paused(dag_id, True)
    fate = (f"is paused and disappears at the next parse of {chart_dag_file(row.slug)}; its runs and the "
            "synced rankings are kept" if known else "was never parsed, so Airflow has nothing to remove")
    return ScheduleChange(schedule_id, row.chart_id, row.slug, dag_id, known, f"{dag_id} {fate}")


def _validated(row, changes: dict, replace: bool) -> dict:
    """The editable settings after ``changes`` to a joined schedule row, through the one validator."""
    current = {k: getattr(row, k) for k in ("is_active", "sync_frequency", "custom_interval_hours",
                                            "cron_expression", "sync_immediately", "sync_historical_data",
                                            "fetch_track_metadata", "deadline_hours")}
    merged = merged_settings(current, changes, replace=replace)
    freq = validate_settings(slug=row.slug, chart_frequency=row.frequency, sync_frequency=merged["sync_frequency"],
                             custom_interval_hours=merged["custom_interval_hours"],
                             cron_expression=merged["cron_expression"], deadline_hours=merged["deadline_hours"])
    return merged | {"sync_frequency": freq.value}


def _follow_in_airflow(schedule_id: int, chart_id: int, slug: str, is_active: bool, *, created: bool = False,
                       changed: bool = True) -> ScheduleChange:
    """Make the DAG's paused state follow is_active (the factory's default applies to a new DAG)."""
    dag_id = dag_id_for(slug)
    known = orchestration.set_paused(dag_id, not is_active)
    state = "active" if is_active else "paused"
    if known:
        message = f"{dag_id} is {state}" + ("; changes to its schedule apply at the next parse of "
                                            f"{chart_dag_file(slug)}" if changed and not created else "")
    else:
        message = (f"{dag_id} appears at the next parse of {chart_dag_file(slug)} (within [dag_processor] "
                   f"min_file_process_interval = {airflow_config.parse_interval_seconds()} s) and starts {state}")
    return ScheduleChange(schedule_id, chart_id, slug, dag_id, known, message, changed)


# -- reads -----------------------------------------------------------------------------------------------
def get_schedule(engine: Engine, schedule_id: int):
    """The joined row of one schedule; ScheduleNotFound when there is none."""
    return schedule_store.existing_row(engine, schedule_id)


def schedule_of_chart(engine: Engine, chart_id: int):
    """The chart's schedule row (joined with the chart), or None; ChartNotFound for an unknown chart."""
    return schedule_store.row_of_chart(engine, chart_id)


def schedule_of_slug(engine: Engine, slug: str):
    """The schedule row of the chart ``slug``; ChartNotFound or ScheduleNotFound."""
    return schedule_store.row_of_slug(engine, slug)


def list_schedules(engine: Engine, *, platform: str | None = None, frequency: str | None = None,
                   active: bool | None = None, overdue: bool | None = None, paging: PageRequest = PageRequest(),
                   since: datetime | None = None, now: datetime | None = None) -> Page:
    """A filtered page of schedules (ordered by chart slug) with chart, status, statistics and DAG state."""
    now = now or datetime.now(UTC)
    rows, total = schedule_store.page_of_rows(engine, platform=platform, frequency=frequency, active=active,
                                              overdue=overdue, now=now, limit=paging.limit, offset=paging.offset)
    return Page(describe(engine, rows, now=now, since=since), total, paging.limit, paging.offset)


def schedule_table(engine: Engine, *, search: str | None = None, platform: str | None = None,
                   frequency: str | None = None, status: str | None = None, sort: str = "chart",
                   descending: bool = False, paging: PageRequest = PageRequest(),
                   now: datetime | None = None) -> Page:
    """The admin page's schedule table: ``list_schedules``' records plus their live ``coverage``,
    filtered by status and sorted by any column (by coverage: computed for every schedule, one statement)."""
    if status is not None and status not in SCHEDULE_STATUSES:
        raise ValueError(f"status must be one of {', '.join(SCHEDULE_STATUSES)}")
    now = now or datetime.now(UTC)
    every = gaps.windows(engine) if sort == "coverage" else []
    order = gap_store.coverage_subquery(every) if every else None
    ids, total = pages.schedule_ids(engine, search=search, platform=platform, frequency=frequency,
                                    status=status, sort=sort, descending=descending, paging=paging,
                                    now=now, coverage=order, windows=len(every))
    rows = rows_by_id(engine, ids)
    coverage = gaps.coverages(engine, [r.chart_id for r in rows])
    items = [item | {"coverage": coverage[item["chart_id"]].record() if item["chart_id"] in coverage else None}
             for item in describe(engine, rows, now=now)]
    return Page(items, total, paging.limit, paging.offset)


def describe(engine: Engine, rows: list, *, now: datetime | None = None, since: datetime | None = None) -> list[dict]:
    """Schedule rows -> records with chart, status, statistics and DAG state (a fixed number of queries)."""
    now = now or datetime.now(UTC)
    by_chart = stats_store.execution_stats(engine, [r.chart_id for r in rows], since=since, now=now)
    dag_ids = {r.id: _safe_dag_id(r.slug) for r in rows}
    dags = orchestration.dag_states([d for d in dag_ids.values() if d])
    items = []
    for r in rows:
        execution = by_chart.get(r.chart_id, stats_store.ExecutionStats())
        overdue = is_overdue(
            is_active=bool(r.is_active), frequency=r.sync_frequency, last_success_at=execution.last_success_at,
            created_at=r.created_at, now=now, custom_interval_hours=r.custom_interval_hours,
            cron_expression=r.cron_expression)
        items.append(schedule_store.record(r) | {
            "created_at": as_utc(r.created_at), "updated_at": as_utc(r.updated_at),
            "dag_id": dag_ids[r.id],
            "chart": {"id": r.chart_id, "slug": r.slug, "name": r.name, "platform": r.platform,
                      "country_code": r.country_code, "frequency": r.frequency,
                      "publication_weekday": r.publication_weekday},
            "status": schedule_status(is_active=bool(r.is_active), overdue=overdue),
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
    row = get_schedule(engine, schedule_id)
    return describe(engine, [row])[0] | {"executions": stats_store.recent_executions(engine, row.chart_id, history),
                                         "coverage": _coverage_record(engine, row.chart_id)}


def _coverage_record(engine: Engine, chart_id: int) -> dict | None:
    found = gaps.chart_coverage(engine, chart_id)
    return found.record() if found else None


def status(engine: Engine, chart_id: int) -> dict:
    """A chart's sync status: schedule, latest execution, next run, overdue, coverage now."""
    row = schedule_of_chart(engine, chart_id)
    latest = stats_store.recent_executions(engine, chart_id, 1)
    result = {"chart_id": chart_id, "schedule": None, "status": "not-scheduled", "overdue": False,
              "latest_execution": latest[0] if latest else None, "next_run_at": None, "dag": None,
              "coverage": _coverage_record(engine, chart_id)}
    if row is None:
        return result
    item = describe(engine, [row])[0]
    dag = item["dag"]
    return result | {
        "schedule": item, "status": item["status"], "overdue": item["overdue"], "dag": dag,
        "next_run_at": dag.next_dagrun if dag is not None and not dag.is_paused else None,
    }


# -- runs --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TriggerResult:
    chart_id: int
    dag_id: str
    run_id: str
    state: str
    period: date | None
    dag_is_paused: bool
    created: bool = True  # False: the period's queued or running run, returned instead of a second one


def trigger(engine: Engine, chart_id: int, period: date | None, *, actor: str, snap: bool = False,
            today: date | None = None) -> TriggerResult:
    """A manual run of the chart's DAG now, for ``period`` (else the latest published one); audited.

    Only what can be synced: a period start of the chart inside its history window (``snap`` asks
    for the period holding a day), and not one the catchup is creating right now (a manual run
    there would race the scheduler for the same run; further ahead, the scheduler finds the manual
    run and passes over it). A period with a queued or running run gets that run back, not a
    second one.
    """
    row = schedule_of_chart(engine, chart_id)
    if row is None:
        raise ScheduleNotFound(f"chart {chart_id} has no sync schedule (add one first)")
    dag_id = dag_id_for(row.slug)
    if period is not None:
        config = ScheduleConfig.from_row(row)
        period = triggerable_period(config, period, today or datetime.now(UTC).date(), snap=snap)
        front = orchestration.catchup_fronts([dag_id]).get(dag_id)
        if front is not None and is_next_in_catchup(config.period_frequency, period, front):
            raise ScheduleError("period", f"{period} is next in the catchup: Airflow's scheduler is creating its "
                                          f"run (it is at {front}); it syncs in a few minutes")
    run = orchestration.trigger(dag_id, period, actor, note=f"triggered through chart-sync by {actor}")
    dag = orchestration.dag_state(dag_id)
    result = TriggerResult(chart_id, dag_id, run.run_id, run.state, period, bool(dag and dag.is_paused), run.created)
    if run.created:
        with engine.begin() as conn:
            audit.record(conn, actor=actor, action="trigger", entity=audit.CHART, entity_id=chart_id,
                         after={"dag_id": dag_id, "run_id": run.run_id, "state": run.state, "period": period})
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
        if not run.created:
            return BulkItem(chart_id, "unchanged", f"{run.dag_id}: run {run.run_id} is already {run.state}",
                            run_id=run.run_id)
        return BulkItem(chart_id, "done", f"{run.dag_id}: run {run.run_id} {run.state}", run_id=run.run_id)
    row = schedule_of_chart(engine, chart_id)
    if row is None:
        raise ScheduleNotFound(f"chart {chart_id} has no sync schedule")
    if action == "remove":
        change = delete_schedule(engine, row.id, actor=actor)
    else:
        change = set_active(engine, row.id, action == "activate", actor=actor)
    return BulkItem(chart_id, "done" if change.changed else "unchanged", change.message, row.id)



def active_configs(engine: Engine, slug: str | None = None) -> tuple[list[ScheduleConfig], list[tuple[str, str]]]:
    """The validated configs of active schedules (only ``slug``'s when given), and (slug, error) of
    the rows the validator refused (they only affect their own chart)."""
    configs, invalid = [], []
    for row in load_rows(engine, slug):
        try:
            config = ScheduleConfig.from_row(row)
        except ScheduleError as exc:
            invalid.append((row.slug, str(exc)))
            continue
        if config.is_active:
            configs.append(config)
    return configs, invalid
