"""The execution log: one ``chart_sync_execution`` row per sync task try that got an answer."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import Connection, Engine, delete, insert

from chartsync.core.outcomes import FAILED, SUCCESS, RunRef, SyncResult
from chartsync.store.tables import chart_sync_execution


def record_success(conn: Connection, run: RunRef, result: SyncResult, started: datetime,
                   completed: datetime) -> int:
    """Insert the execution row inside the sync's own transaction: data and log land together.

    Returns the row's id: the sync's asset event names it, so later work (track metadata) is
    credited to this execution."""
    return conn.execute(
        insert(chart_sync_execution).values(
            **_run_values(run), period=result.period, status=SUCCESS, started_at=started,
            completed_at=completed, duration_seconds=(completed - started).total_seconds(),
            rankings_created=result.rankings_created, rankings_updated=result.rankings_updated,
            entries_written=result.entries_written, tracks_created=result.tracks_created,
            tracks_updated=result.tracks_updated, api_requests=result.api_requests,
        )
    ).inserted_primary_key[0]


def record_failure(engine: Engine, run: RunRef, period: date | None, started: datetime, error: str,
                   *, status: str = FAILED, api_requests: int = 0) -> None:
    """A try that wrote no data: failed (with the error) or skipped (the API never published it)."""
    completed = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(
            insert(chart_sync_execution).values(
                **_run_values(run), period=period, status=status, started_at=started,
                completed_at=completed, duration_seconds=(completed - started).total_seconds(),
                api_requests=api_requests, error=error[:4000],
            )
        )


def _run_values(run: RunRef) -> dict:
    return {"chart_id": run.chart_id, "dag_id": run.dag_id, "run_id": run.run_id, "try_number": run.try_number}


def delete_started_before(conn: Connection, cutoff: datetime) -> int:
    """Retention: drop execution rows started before ``cutoff``; how many went."""
    return conn.execute(delete(chart_sync_execution).where(chart_sync_execution.c.started_at < cutoff)).rowcount
