"""The execution log: one ``chart_sync_execution`` row per sync task try that got an answer, and one
``failed`` row for every try Airflow ended failed (or up_for_retry), however it ended.

A try that waits for the Soundcharts quota (deferred in Airflow) has a ``waiting_for_quota`` row meanwhile;
the try's final row (success, failed, skipped) replaces it, so an ended try keeps one row.

A failed try may be noticed by several writers (the task body, a listener in the task, the scheduler
or the api-server, the reconciliation with Airflow's state); the unique index
``uq_chart_sync_execution_failed_try`` lets the first one win and the others find its row.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime

from sqlalchemy import Connection, Engine, and_, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from chartsync.core.outcomes import FAILED, SUCCESS, WAITING_FOR_QUOTA, RunRef, SyncResult
from chartsync.core.timestamps import as_utc
from chartsync.store.tables import chart_sync_execution


def record_success(conn: Connection, run: RunRef, result: SyncResult, started: datetime,
                   completed: datetime) -> int:
    """Insert the execution row inside the sync's own transaction: data and log land together.

    Returns the row's id: the sync's asset event names it, so later work (track metadata) is
    credited to this execution."""
    execution_id = conn.execute(
        insert(chart_sync_execution).values(
            **_run_values(run), period=result.period, status=SUCCESS, started_at=started,
            completed_at=completed, duration_seconds=(completed - started).total_seconds(),
            rankings_created=result.rankings_created, rankings_updated=result.rankings_updated,
            entries_written=result.entries_written, tracks_created=result.tracks_created,
            tracks_updated=result.tracks_updated, api_requests=result.api_requests,
        )
    ).inserted_primary_key[0]
    _end_wait(conn, run)
    _keep_failure_last(conn, run, completed)
    return execution_id


def record_waiting(engine: Engine, run: RunRef, period: date | None, started: datetime, reason: str,
                   *, api_requests: int = 0) -> bool:
    """The try waits for the quota: its ``waiting_for_quota`` row (one per try: a try that waits again after
    resuming keeps its row, with when it started waiting first, and the new reason). True when the try
    started waiting now, False when it waits again."""
    e = chart_sync_execution.c
    with engine.begin() as conn:
        conn.execute(delete(chart_sync_execution).where(  # an earlier try's wait ended with that try
            e.dag_id == run.dag_id, e.run_id == run.run_id, e.try_number < run.try_number,
            e.status == WAITING_FOR_QUOTA))
        waiting = conn.execute(select(e.id, e.api_requests).where(*_of_try(run), e.status == WAITING_FOR_QUOTA)).first()
        if waiting is not None:
            conn.execute(update(chart_sync_execution).where(e.id == waiting.id).values(
                period=period, error=reason[:4000], api_requests=waiting.api_requests + api_requests))
            return False
        conn.execute(insert(chart_sync_execution).values(
            **_run_values(run), period=period, status=WAITING_FOR_QUOTA, started_at=started, api_requests=api_requests,
            error=reason[:4000]))
    return True


def _end_wait(conn: Connection, run: RunRef) -> None:
    """The try's final row replaces its waiting one; a later try of the run ends an earlier try's wait too (a
    deferred task cleared by hand starts a new try: the old one will never resume)."""
    e = chart_sync_execution.c
    conn.execute(delete(chart_sync_execution).where(e.dag_id == run.dag_id, e.run_id == run.run_id,
                                                    e.try_number <= run.try_number, e.status == WAITING_FOR_QUOTA))


def waiting_count(engine: Engine) -> int:
    """Tries waiting for the quota now (one per waiting period)."""
    e = chart_sync_execution.c
    with engine.connect() as conn:
        return conn.execute(select(func.count()).where(e.status == WAITING_FOR_QUOTA)).scalar_one()


def _of_try(run: RunRef) -> tuple:
    e = chart_sync_execution.c
    return e.dag_id == run.dag_id, e.run_id == run.run_id, e.try_number == run.try_number


def _keep_failure_last(conn: Connection, run: RunRef, completed: datetime) -> None:
    """When Airflow ended this try failed before its body got here (the try's supervisor was killed and
    the orphaned task process went on, or the try was marked failed while it ran), the failure stays the
    try's last word: its row moves after this success, as when the failure is recorded second
    (``services.failures``), so the schedule's status says what Airflow says."""
    e = chart_sync_execution.c
    failed = conn.execute(select(e.id, e.started_at, e.completed_at, e.error).where(
        e.dag_id == run.dag_id, e.run_id == run.run_id, e.try_number == run.try_number, e.status == FAILED)).first()
    if failed is None:
        return
    started = max(as_utc(failed.started_at), completed)
    ended = max(as_utc(failed.completed_at) if failed.completed_at is not None else started, started)
    note = f"(the task body had recorded {SUCCESS} for this try)"
    error = failed.error or ""
    conn.execute(chart_sync_execution.update().where(e.id == failed.id).values(
        started_at=started, completed_at=ended, duration_seconds=(ended - started).total_seconds(),
        error=error if note in error else f"{error} {note}".strip()[:4000]))


def record_failure(engine: Engine, run: RunRef, period: date | None, started: datetime, error: str,
                   *, status: str = FAILED, api_requests: int = 0) -> None:
    """A try that wrote no data: failed (with the error) or skipped (the API never published it).

    A try has one failed row: when another writer recorded this try's failure first (Airflow
    marked it failed while the body was still running), that row stands."""
    insert_failure(engine, run, period, started, datetime.now(UTC), error, status=status,
                   api_requests=api_requests)


def insert_failure(engine: Engine, run: RunRef, period: date | None, started: datetime, completed: datetime,
                   error: str, *, status: str = FAILED, api_requests: int = 0) -> bool:
    """Insert a failed (or skipped) row for the try; False when the try's failed row exists already."""
    values = dict(**_run_values(run), period=period, status=status, started_at=started, completed_at=completed,
                  duration_seconds=max((completed - started).total_seconds(), 0.0), api_requests=api_requests,
                  error=error[:4000])
    try:
        with engine.begin() as conn:
            conn.execute(insert(chart_sync_execution).values(**values))
            _end_wait(conn, run)
        return True
    except IntegrityError:
        if status == FAILED and failed_row_exists(engine, run.dag_id, run.run_id, run.try_number):
            return False
        raise


def failed_row_exists(engine: Engine, dag_id: str, run_id: str, try_number: int) -> bool:
    e = chart_sync_execution.c
    with engine.connect() as conn:
        return conn.execute(select(e.id).where(e.dag_id == dag_id, e.run_id == run_id, e.try_number == try_number,
                                               e.status == FAILED)).first() is not None


def rows_of_try(engine: Engine, dag_id: str, run_id: str, try_number: int) -> list:
    """The execution rows of one task try (status, period, started_at, error), oldest first."""
    e = chart_sync_execution.c
    with engine.connect() as conn:
        return conn.execute(
            select(e.id, e.status, e.period, e.started_at, e.error)
            .where(e.dag_id == dag_id, e.run_id == run_id, e.try_number == try_number)
            .order_by(e.started_at, e.id)).all()


def run_period(engine: Engine, dag_id: str, run_id: str):
    """The period the run's newest row with a period synced (None when no row names one)."""
    e = chart_sync_execution.c
    with engine.connect() as conn:
        return conn.execute(select(e.period).where(e.dag_id == dag_id, e.run_id == run_id, e.period.is_not(None))
                            .order_by(e.started_at.desc(), e.id.desc()).limit(1)).scalar()


def failed_tries_recorded(engine: Engine, runs: Iterable[tuple[str, str]]) -> set[tuple[str, str, int]]:
    """Of these (dag_id, run_id) pairs, the (dag_id, run_id, try_number) that have their failed row."""
    runs = sorted(set(runs))
    found: set[tuple[str, str, int]] = set()
    e = chart_sync_execution.c
    with engine.connect() as conn:
        for start in range(0, len(runs), 200):  # bounded statements
            batch = runs[start:start + 200]
            found.update(tuple(r) for r in conn.execute(
                select(e.dag_id, e.run_id, e.try_number).where(
                    e.status == FAILED, or_(*(and_(e.dag_id == d, e.run_id == r) for d, r in batch)))))
    return found


def _run_values(run: RunRef) -> dict:
    return {"chart_id": run.chart_id, "dag_id": run.dag_id, "run_id": run.run_id, "try_number": run.try_number}


def delete_started_before(conn: Connection, cutoff: datetime) -> int:
    """Retention: drop execution rows started before ``cutoff``; how many went."""
    return conn.execute(delete(chart_sync_execution).where(chart_sync_execution.c.started_at < cutoff)).rowcount
