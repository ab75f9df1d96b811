"""What chart-sync asks of Airflow itself: trigger a run, pause a DAG, create backfills, and which
tries of the chart DAGs Airflow failed (``failed_tries``, for ``services.failures``).

Goes through the same functions Airflow's own CLI and REST API call (``trigger_dag``,
``_create_backfill``), so it works wherever the metadata DB is reachable: the ``chartsync``
CLI, the plugin inside the api-server, and the plugin's listeners in the scheduler. Task code
never calls this (Airflow 3 tasks have no metadata DB access).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

from airflow.api.common.trigger_dag import trigger_dag
from airflow.exceptions import DagNotFound, DagRunAlreadyExists
from airflow.models import DagModel, DagRun, TaskInstance
from airflow.models.backfill import (
    AlreadyRunningBackfill,
    Backfill,
    DagNonPeriodicScheduleException,
    InvalidBackfillDate,
    InvalidBackfillDateRange,
    NoBackfillRunsToCreate,
    ReprocessBehavior,
    _create_backfill,
)
from airflow.models.taskinstance import clear_task_instances
from airflow.models.taskinstancehistory import TaskInstanceHistory
from airflow.utils.session import create_session
from airflow.utils.state import DagRunState
from airflow.utils.types import DagRunTriggeredByType
from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from chartsync.core.timestamps import midnight
from chartsync.seam.task_failures import FAILED_STATES, FINAL_STATES, FailedTry, state_name
from chartsync.settings import DAG_ID_PREFIX


ACTIVE_RUN_STATES = ("queued", "running")


class DagNotParsedYet(LookupError):
    """The chart's DAG is not (yet) in Airflow: the factory builds it at the next parse."""


class BackfillAlreadyRunning(RuntimeError):
    pass


class BackfillRefused(RuntimeError):
    """Airflow refused the backfill for this DAG (no run to create in the range, a schedule that
    cannot backfill, dates it does not accept): Airflow's message says why."""


@dataclass(frozen=True)
class BackfillInfo:
    id: int
    dag_id: str
    from_date: date
    to_date: date
    reprocess_behavior: str
    completed: bool
    is_paused: bool


@dataclass(frozen=True)
class DagState:
    dag_id: str
    is_paused: bool
    next_dagrun: datetime | None
    last_run_state: str | None


def dag_state(dag_id: str) -> DagState | None:

    with create_session() as session:
        model = session.scalar(select(DagModel).where(DagModel.dag_id == dag_id))
        if model is None:
            return None
        last = session.scalar(
            select(DagRun.state).where(DagRun.dag_id == dag_id).order_by(DagRun.run_after.desc()).limit(1))
        return DagState(dag_id, bool(model.is_paused), model.next_dagrun_create_after, last)


def catchup_fronts(dag_ids: list[str]) -> dict[str, date | None]:
    """Where Airflow's own scheduling stands for each DAG: the period (logical date) of the next run the
    scheduler creates (``DagModel.next_dagrun``). Every period from it on is Airflow's to create (a
    catchup's history, or periods still to come); a run chart-sync created there would race the scheduler
    for the same ``(dag_id, logical_date)``. None when the DAG has no next run; DAGs that Airflow does not
    know are left out (one query). A run already created behind the front (in flight, or cleared to run
    again) is no race: the scheduler never creates that run a second time."""

    if not dag_ids:
        return {}
    with create_session(scoped=False) as session:
        rows = session.execute(select(DagModel.dag_id, DagModel.next_dagrun)
                               .where(DagModel.dag_id.in_(dag_ids))).all()
    return {dag_id: (nxt.date() if nxt is not None else None) for dag_id, nxt in rows}


def set_paused(dag_id: str, paused: bool) -> bool:
    """Pause or unpause; False when the DAG is not parsed yet (the factory's default applies then)."""

    with create_session() as session:
        done = session.execute(update(DagModel).where(DagModel.dag_id == dag_id).values(is_paused=paused))
        return done.rowcount > 0


def trigger_run(dag_id: str, period: date | None, user: str, note: str | None = None) -> tuple[str, str]:
    """Create a manual run now (for ``period``, else the latest published one); returns (run_id, state)."""

    with create_session() as session:
        if session.scalar(select(DagModel.dag_id).where(DagModel.dag_id == dag_id)) is None:
            raise DagNotParsedYet(f"{dag_id} is not in Airflow yet (it appears at the next DAG parse)")
    now = datetime.now(UTC)
    run_id = f"{MANUAL_PREFIX}{now:%Y%m%dT%H%M%S%f}"
    run = trigger_dag(
        dag_id,
        triggered_by=DagRunTriggeredByType.REST_API,
        triggering_user_name=user,
        run_id=run_id,
        logical_date=midnight(period) if period else None,
        run_after=now,
        conf={},
        note=note,
    )
    if run is None:
        raise DagNotParsedYet(f"{dag_id} could not be triggered")
    return run.run_id, str(run.state)


def backfills(dag_id: str, active_only: bool = False) -> list[BackfillInfo]:

    query = select(Backfill).where(Backfill.dag_id == dag_id).order_by(Backfill.id)
    if active_only:
        query = query.where(Backfill.completed_at.is_(None))
    with create_session() as session:
        return [
            BackfillInfo(b.id, b.dag_id, b.from_date.date(), b.to_date.date(),
                         str(getattr(b.reprocess_behavior, "value", b.reprocess_behavior)),
                         b.completed_at is not None, bool(b.is_paused))
            for b in session.scalars(query)
        ]


def create_backfill(dag_id: str, first: date, last: date, user: str, reprocess: str = "completed",
                    max_active_runs: int = 4) -> BackfillInfo:
    """A backfill over the periods [first, last]; Airflow's scheduler runs it."""

    try:
        backfill = _create_backfill(
            dag_id=dag_id, from_date=midnight(first), to_date=midnight(last), max_active_runs=max_active_runs,
            reverse=False, dag_run_conf=None, triggering_user_name=user,
            reprocess_behavior=ReprocessBehavior(reprocess), run_on_latest_version=True,
        )
    except AlreadyRunningBackfill as exc:
        raise BackfillAlreadyRunning(str(exc)) from exc
    except DagNotFound as exc:
        raise DagNotParsedYet(str(exc)) from exc
    except (NoBackfillRunsToCreate, DagNonPeriodicScheduleException, InvalidBackfillDate,
            InvalidBackfillDateRange) as exc:  # e.g. a schedule changed and its DAG not re-parsed yet
        raise BackfillRefused(str(exc)) from exc
    return BackfillInfo(backfill.id, dag_id, first, last, reprocess, False, bool(backfill.is_paused))


def rerun_succeeded(dag_id: str, first: date, last: date) -> list[str]:
    """Clear the successful runs of [first, last] (periods whose rankings are gone) so the scheduler
    runs them again as what they are: a backfill only re-runs failed runs (reprocess ``failed``), and
    one that re-ran a successful run would turn it into a backfill run. Returns the run ids cleared."""

    with create_session() as session:
        runs = session.scalars(select(DagRun).where(
            DagRun.dag_id == dag_id, DagRun.state == "success",
            DagRun.logical_date >= midnight(first), DagRun.logical_date <= midnight(last))).all()
        for run in runs:
            clear_task_instances(list(run.task_instances), session, dag_run_state=DagRunState.QUEUED)
        return [run.run_id for run in runs]


# -- used by the REST API (plugin chart_sync_admin) -----------------------------------------------
class RunAlreadyExists(RuntimeError):
    """Airflow already has a run of this DAG for that period (clear it in Airflow to re-run it)."""


@dataclass(frozen=True)
class TriggeredRun:
    run_id: str
    state: str
    created: bool  # False: a queued or running run of the same period was there already


MANUAL_PREFIX = "manual__chartsync__"


def active_run(dag_id: str, period: date | None) -> TriggeredRun | None:
    """The queued or running run of ``dag_id`` for ``period`` (``None``: a chart-sync manual run of
    the latest published period, which has no logical date), if any."""

    if period is None:
        which = and_(DagRun.logical_date.is_(None), DagRun.run_id.startswith(MANUAL_PREFIX, autoescape=True))
    else:
        which = DagRun.logical_date == midnight(period)
    with create_session(scoped=False) as session:
        row = session.execute(select(DagRun.run_id, DagRun.state).where(
            DagRun.dag_id == dag_id, which, DagRun.state.in_(ACTIVE_RUN_STATES))
            .order_by(DagRun.run_after.desc()).limit(1)).first()
    return TriggeredRun(row.run_id, str(row.state), created=False) if row else None


def trigger(dag_id: str, period: date | None, user: str, note: str | None = None) -> TriggeredRun:
    """A manual run for ``period`` (else the latest published one), or the queued or running one that
    is there already; Airflow's refusals named: DagNotParsedYet, RunAlreadyExists (a finished run
    of that period: clear it in Airflow to sync the period again)."""

    if (running := active_run(dag_id, period)) is not None:
        return running
    try:
        run_id, state = trigger_run(dag_id, period, user, note)
    except DagNotFound as exc:
        raise DagNotParsedYet(f"{dag_id} is not in Airflow yet (it appears at the next DAG parse)") from exc
    except (DagRunAlreadyExists, IntegrityError) as exc:
        if (running := active_run(dag_id, period)) is not None:  # a concurrent trigger created it: share it
            return running
        what = f"period {period}" if period else "this moment"
        raise RunAlreadyExists(f"{dag_id} already has a finished run for {what}; clear that run in Airflow "
                               "to sync the period again") from exc
    return TriggeredRun(run_id, state, created=True)


def dag_states(dag_ids: list[str]) -> dict[str, DagState]:
    """``dag_state`` for many DAGs in two queries (DAGs Airflow does not know are left out)."""

    if not dag_ids:
        return {}
    newest = (select(DagRun.dag_id, func.max(DagRun.run_after).label("run_after"))
              .where(DagRun.dag_id.in_(dag_ids)).group_by(DagRun.dag_id).subquery())
    with create_session() as session:
        models = session.execute(select(DagModel.dag_id, DagModel.is_paused, DagModel.next_dagrun_create_after)
                                 .where(DagModel.dag_id.in_(dag_ids))).all()
        last = dict(session.execute(select(DagRun.dag_id, DagRun.state).join(
            newest, and_(DagRun.dag_id == newest.c.dag_id, DagRun.run_after == newest.c.run_after))).all())
    return {m.dag_id: DagState(m.dag_id, bool(m.is_paused), m.next_dagrun_create_after,
                               str(last[m.dag_id]) if m.dag_id in last else None) for m in models}


# -- on-demand runs, one at a time per key (audience refresh) --------------------------------------
@dataclass(frozen=True)
class KeyedRun:
    """A run of a DAG for one key (e.g. a song): ``created`` False when an active one was reused."""

    run_id: str
    state: str
    created: bool
    dag_paused: bool = False


def _keyed_prefix(key: str) -> str:
    return f"manual__{key}__"


def active_keyed_run(dag_id: str, key: str) -> KeyedRun | None:
    """The queued or running run of ``dag_id`` for ``key``, if any."""

    with create_session() as session:
        row = session.execute(
            select(DagRun.run_id, DagRun.state)
            .where(DagRun.dag_id == dag_id, DagRun.run_id.startswith(_keyed_prefix(key), autoescape=True),
                   DagRun.state.in_(ACTIVE_RUN_STATES))
            .order_by(DagRun.run_after.desc()).limit(1)
        ).first()
    return KeyedRun(row.run_id, str(row.state), created=False) if row else None


def trigger_keyed_run(dag_id: str, key: str, conf: dict, user: str, note: str | None = None) -> KeyedRun:
    """Trigger a run of ``dag_id`` for ``key`` unless one is queued or running; that one is returned then.

    Run ids are deterministic, ``manual__<key>__<YYYYMMDD>`` (``.2``, ``.3``... for later runs the same
    day), so two requests racing past the check compute the same id and Airflow's unique
    (dag_id, run_id) constraint lets only one of them create it.
    """

    prefix = _keyed_prefix(key)
    with create_session() as session:
        paused = session.scalar(select(DagModel.is_paused).where(DagModel.dag_id == dag_id))
        if paused is None:
            raise DagNotParsedYet(f"{dag_id} is not in Airflow yet (it appears at the next DAG parse)")
        runs = session.execute(select(DagRun.run_id, DagRun.state).where(
            DagRun.dag_id == dag_id, DagRun.run_id.startswith(prefix, autoescape=True))).all()
    for run_id, state in runs:
        if str(state) in ACTIVE_RUN_STATES:
            return KeyedRun(run_id, str(state), created=False, dag_paused=bool(paused))
    now = datetime.now(UTC)
    taken = {run_id for run_id, _ in runs}
    run_id = base = f"{prefix}{now:%Y%m%d}"
    attempt = 1
    while run_id in taken:
        attempt += 1
        run_id = f"{base}.{attempt}"
    try:
        run = trigger_dag(dag_id, triggered_by=DagRunTriggeredByType.REST_API, triggering_user_name=user,
                          run_id=run_id, logical_date=None, run_after=now, conf=conf, note=note)
    except DagNotFound as exc:
        raise DagNotParsedYet(f"{dag_id} is not in Airflow yet (it appears at the next DAG parse)") from exc
    except (DagRunAlreadyExists, IntegrityError):  # a concurrent request created this very run: share it
        return active_keyed_run(dag_id, key) or KeyedRun(run_id, "queued", created=False, dag_paused=bool(paused))
    return KeyedRun(run.run_id, str(run.state), created=True, dag_paused=bool(paused))


# -- what Airflow says failed (reconciliation: services.failures) -----------------------------------
def failed_tries(since: datetime, limit: int = 500, *, dag_id: str | None = None,
                 run_id: str | None = None) -> list[FailedTry]:
    """Tries of chart DAGs that Airflow ended failed, up_for_retry or upstream_failed since ``since``.

    Current task instances in those states, then earlier tries from ``task_instance_history``
    (a retried try is archived there as failed; a cleared final failure and a try cleared while it
    ran too), then failed runs whose task instance is not failed (the run was marked failed while
    its task waited: Airflow skips it). Only a current task instance can be a final failure.
    Newest first, at most ``limit`` of each kind.
    """
    found: dict[tuple, FailedTry] = {}
    for model, current in ((TaskInstance, True), (TaskInstanceHistory, False)):
        ended = func.coalesce(model.end_date, model.start_date, model.updated_at)
        conditions = [model.state.in_(FAILED_STATES), ended >= since,
                      model.dag_id.startswith(DAG_ID_PREFIX, autoescape=True)]
        if dag_id is not None:
            conditions.append(model.dag_id == dag_id)
        if run_id is not None:
            conditions.append(model.run_id == run_id)
        query = (select(model.dag_id, model.run_id, model.task_id, model.try_number, model.state, model.start_date,
                        model.end_date, DagRun.logical_date, DagRun.data_interval_end)
                 .join(DagRun, and_(DagRun.dag_id == model.dag_id, DagRun.run_id == model.run_id))
                 .where(*conditions).order_by(ended.desc()).limit(limit))
        with create_session(scoped=False) as session:  # never the caller's session (a listener in the scheduler)
            rows = session.execute(query).all()
        for r in rows:
            state = state_name(r.state)
            key = (r.dag_id, r.run_id, r.task_id, int(r.try_number or 0))
            found.setdefault(key, FailedTry(
                dag_id=r.dag_id, run_id=r.run_id, task_id=r.task_id, try_number=key[3], state=state,
                final=current and state in FINAL_STATES, logical_date=r.logical_date,
                data_interval_end=r.data_interval_end, started_at=r.start_date, ended_at=r.end_date,
                seen_by="reconciliation"))
    # a run failed while its task was not (marked failed by hand while queued or waiting for a
    # retry: Airflow skips the task): the run's failure, against the task's latest try
    ended = func.coalesce(DagRun.end_date, DagRun.updated_at)
    conditions = [DagRun.state == "failed", ended >= since, DagRun.dag_id.startswith(DAG_ID_PREFIX, autoescape=True),
                  or_(TaskInstance.state.is_(None), TaskInstance.state.not_in(FAILED_STATES))]
    if dag_id is not None:
        conditions.append(DagRun.dag_id == dag_id)
    if run_id is not None:
        conditions.append(DagRun.run_id == run_id)
    query = (select(TaskInstance.dag_id, TaskInstance.run_id, TaskInstance.task_id, TaskInstance.try_number,
                    TaskInstance.state, TaskInstance.start_date, DagRun.end_date, DagRun.logical_date,
                    DagRun.data_interval_end)
             .join(DagRun, and_(DagRun.dag_id == TaskInstance.dag_id, DagRun.run_id == TaskInstance.run_id))
             .where(*conditions).order_by(ended.desc()).limit(limit))
    with create_session(scoped=False) as session:
        rows = session.execute(query).all()
    for r in rows:
        key = (r.dag_id, r.run_id, r.task_id, int(r.try_number or 0))
        found.setdefault(key, FailedTry(
            dag_id=r.dag_id, run_id=r.run_id, task_id=r.task_id, try_number=key[3], state="failed", final=True,
            logical_date=r.logical_date, data_interval_end=r.data_interval_end, started_at=r.start_date,
            ended_at=r.end_date, error=f"the DAG run failed while {r.task_id} was {state_name(r.state) or 'not started'}",
            seen_by="reconciliation"))
    return list(found.values())


def run_dates(dag_id: str, run_id: str) -> tuple[datetime | None, datetime | None]:
    """A run's logical date and data interval end (None, None when Airflow does not know the run)."""

    with create_session(scoped=False) as session:
        row = session.execute(select(DagRun.logical_date, DagRun.data_interval_end)
                              .where(DagRun.dag_id == dag_id, DagRun.run_id == run_id)).first()
    return (row.logical_date, row.data_interval_end) if row else (None, None)
