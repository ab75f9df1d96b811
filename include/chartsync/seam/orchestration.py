"""What chart-sync asks of Airflow itself: trigger a run, pause a DAG, create backfills.

Goes through the same functions Airflow's own CLI and REST API call (``trigger_dag``,
``_create_backfill``), so it works wherever the metadata DB is reachable: the ``chartsync``
CLI and the plugin inside the api-server. Task code never calls this (Airflow 3 tasks have
no metadata DB access).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

from airflow.api.common.trigger_dag import trigger_dag
from airflow.exceptions import DagNotFound, DagRunAlreadyExists
from airflow.models import DagModel, DagRun
from airflow.models.backfill import AlreadyRunningBackfill, Backfill, ReprocessBehavior, _create_backfill
from airflow.utils.session import create_session
from airflow.utils.types import DagRunTriggeredByType
from sqlalchemy import and_, func, select, update
from sqlalchemy.exc import IntegrityError

from chartsync.core.timestamps import midnight


class DagNotParsedYet(LookupError):
    """The chart's DAG is not (yet) in Airflow: the factory builds it at the next parse."""


class BackfillAlreadyRunning(RuntimeError):
    pass


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
    run_id = f"manual__chartsync__{now:%Y%m%dT%H%M%S%f}"
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
    return BackfillInfo(backfill.id, dag_id, first, last, reprocess, False, bool(backfill.is_paused))


# -- used by the REST API (plugin chart_sync_admin) -----------------------------------------------
class RunAlreadyExists(RuntimeError):
    """Airflow already has a run of this DAG for that period (clear it in Airflow to re-run it)."""


def trigger(dag_id: str, period: date | None, user: str, note: str | None = None) -> tuple[str, str]:
    """``trigger_run`` with Airflow's refusals named: DagNotParsedYet, RunAlreadyExists."""

    try:
        return trigger_run(dag_id, period, user, note)
    except DagNotFound as exc:
        raise DagNotParsedYet(f"{dag_id} is not in Airflow yet (it appears at the next DAG parse)") from exc
    except (DagRunAlreadyExists, IntegrityError) as exc:
        what = f"period {period}" if period else "this moment"
        raise RunAlreadyExists(f"{dag_id} already has a run for {what}; clear that run in Airflow to "
                               "sync the period again") from exc


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


ACTIVE_RUN_STATES = ("queued", "running")


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
