"""Sync one ranking period of a chart: fetch every page, then upsert ranking, entries and
tracks in ONE transaction together with the execution row's counts.

Idempotent: a period synced twice with the same API data changes no row of the
warehouse and reports zero created and zero updated.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime

from sqlalchemy import Connection, Engine, delete, insert, select, update

from chartsync.store import executions
from chartsync.store.tables import chart_ranking, chart_ranking_entry, track
from chartsync.soundcharts.client import (
    Ranking,
    RankingEntry,
    SoundchartsClient,
    SoundchartsMalformedResponse,
    SoundchartsNotFound,
    atom_for,
)
from chartsync.core.trends import trend, weeks_on_chart

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SyncResult:
    period: date
    rankings_created: int = 0
    rankings_updated: int = 0
    entries_written: int = 0
    tracks_created: int = 0
    tracks_updated: int = 0
    api_requests: int = 0
    new_track_ids: tuple[int, ...] = ()
    execution_id: int | None = None  # the chart_sync_execution row, once recorded

    def summary(self) -> str:
        return (
            f"period {self.period}: rankings created={self.rankings_created} updated={self.rankings_updated}, "
            f"entries written={self.entries_written}, tracks created={self.tracks_created} "
            f"updated={self.tracks_updated}, API requests={self.api_requests}"
        )


def fetch_ranking(client: SoundchartsClient, slug: str, period: date | None) -> Ranking:
    """All pages of the ranking for ``period`` (``None``: the latest published one)."""
    return client.ranking(slug, None if period is None else atom_for(period))


def store_ranking(conn: Connection, chart_id: int, ranking: Ranking, now: datetime) -> SyncResult:
    """Upsert tracks, the ranking and its entries inside the caller's transaction."""
    track_ids, new_ids, tracks_updated = _upsert_tracks(conn, ranking.entries, now)
    rows = [_entry_row(e, track_ids[e.song_uuid]) for e in sorted(ranking.entries, key=lambda e: e.position)]
    period = ranking.period
    existing = conn.execute(
        select(chart_ranking.c.id).where(chart_ranking.c.chart_id == chart_id, chart_ranking.c.period == period)
    ).scalar()
    created = updated = written = 0
    if existing is None:
        ranking_id = conn.execute(
            insert(chart_ranking).values(
                chart_id=chart_id,
                period=period,
                ranking_date=ranking.ranking_date,
                entry_count=len(rows),
                fetched_at=now,
            )
        ).inserted_primary_key[0]
        created = 1
    else:
        ranking_id = existing
        if _stored_entries(conn, ranking_id) != rows:
            conn.execute(delete(chart_ranking_entry).where(chart_ranking_entry.c.ranking_id == ranking_id))
            conn.execute(
                update(chart_ranking)
                .where(chart_ranking.c.id == ranking_id)
                .values(entry_count=len(rows), fetched_at=now, ranking_date=ranking.ranking_date)
            )
            updated = 1
        else:
            rows = []
    if rows:
        conn.execute(insert(chart_ranking_entry), [{**row, "ranking_id": ranking_id} for row in rows])
        written = len(rows)
    return SyncResult(
        period=period,
        rankings_created=created,
        rankings_updated=updated,
        entries_written=written,
        tracks_created=len(new_ids),
        tracks_updated=tracks_updated,
        new_track_ids=tuple(sorted(new_ids)),
    )


def sync_period(
    engine: Engine,
    client: SoundchartsClient,
    run: executions.RunRef,
    slug: str,
    period: date | None,
) -> SyncResult:
    """Fetch every page, then store ranking, entries, tracks and the execution row in one transaction.

    ``SoundchartsNotFound`` (not published yet) propagates without writing anything, so the
    caller can wait. Any other failure is recorded as a failed execution and re-raised.
    """
    started = datetime.now(UTC)
    before = client.request_count
    try:
        ranking = fetch_ranking(client, slug, period)
        if period is not None and ranking.period != period:
            raise SoundchartsMalformedResponse(f"{slug}: asked for period {period}, the API answered {ranking.period}")
    except SoundchartsNotFound:
        raise
    except Exception as exc:
        executions.record_failure(engine, run, period, started, describe_error(exc),
                                  api_requests=client.request_count - before)
        raise
    now = datetime.now(UTC)
    try:
        with engine.begin() as conn:
            result = store_ranking(conn, run.chart_id, ranking, now)
            result = replace(result, api_requests=client.request_count - before)
            result = replace(result, execution_id=executions.record_success(conn, run, result, started, now))
    except Exception as exc:
        executions.record_failure(engine, run, ranking.period, started, describe_error(exc),
                                  api_requests=client.request_count - before)
        raise
    log.info("%s %s", slug, result.summary())
    return result


_ENTRY_FIELDS = ("position", "previous_position", "trend", "time_on_chart", "time_on_chart_unit",
                 "weeks_on_chart", "streams", "track_id")


def _entry_row(entry: RankingEntry, track_id: int) -> dict:
    return {
        "position": entry.position,
        "previous_position": entry.previous_position,
        "trend": trend(entry.position, entry.previous_position, entry.entry_state),
        "time_on_chart": entry.time_on_chart,
        "time_on_chart_unit": entry.time_on_chart_unit,
        "weeks_on_chart": weeks_on_chart(entry.time_on_chart, entry.time_on_chart_unit),
        "streams": entry.metric,
        "track_id": track_id,
    }


def _stored_entries(conn: Connection, ranking_id: int) -> list[dict]:
    cols = [chart_ranking_entry.c[name] for name in _ENTRY_FIELDS]
    result = conn.execute(
        select(*cols).where(chart_ranking_entry.c.ranking_id == ranking_id).order_by(chart_ranking_entry.c.position)
    )
    return [dict(row._mapping) for row in result]


def _dialect_insert(conn: Connection, table):
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table)


def describe_error(exc: BaseException) -> str:
    """A one-line error for the execution log: the driver's message, not the whole SQL statement."""
    from sqlalchemy.exc import StatementError

    if isinstance(exc, StatementError) and exc.orig is not None:
        return f"{type(exc.orig).__name__}: {str(exc.orig).splitlines()[0]}"
    return f"{type(exc).__name__}: {exc}"


def _upsert_tracks(
    conn: Connection, entries: list[RankingEntry], now: datetime
) -> tuple[dict[str, int], set[int], int]:
    """Insert unseen tracks, refresh changed names; returns ids by uuid, new ids, updated count."""
    wanted = {e.song_uuid: e for e in entries}
    existing = {
        row.song_uuid: row
        for row in conn.execute(
            select(track.c.id, track.c.song_uuid, track.c.name, track.c.credit_name, track.c.image_url).where(
                track.c.song_uuid.in_(list(wanted))
            )
        )
    }
    ids = {uuid: row.id for uuid, row in existing.items()}
    fresh = [
        {"song_uuid": e.song_uuid, "name": e.song_name, "credit_name": e.credit_name,
         "image_url": e.image_url, "created_at": now, "updated_at": now}
        for uuid, e in wanted.items() if uuid not in existing
    ]
    new_ids: set[int] = set()
    if fresh:
        # ON CONFLICT DO NOTHING: another chart's sync may insert the same new song concurrently.
        returned = conn.execute(
            _dialect_insert(conn, track).on_conflict_do_nothing(index_elements=["song_uuid"])
            .returning(track.c.id, track.c.song_uuid),
            fresh,
        )
        for row in returned:
            ids[row.song_uuid] = row.id
            new_ids.add(row.id)
        raced = [row["song_uuid"] for row in fresh if row["song_uuid"] not in ids]
        if raced:
            ids.update(conn.execute(select(track.c.song_uuid, track.c.id).where(track.c.song_uuid.in_(raced))).all())
    changed = [
        {"b_id": row.id, "name": wanted[uuid].song_name, "credit_name": wanted[uuid].credit_name,
         "image_url": wanted[uuid].image_url, "updated_at": now}
        for uuid, row in existing.items()
        if (row.name, row.credit_name, row.image_url)
        != (wanted[uuid].song_name, wanted[uuid].credit_name, wanted[uuid].image_url)
    ]
    if changed:
        from sqlalchemy import bindparam

        conn.execute(
            update(track)
            .where(track.c.id == bindparam("b_id"))
            .values(name=bindparam("name"), credit_name=bindparam("credit_name"),
                    image_url=bindparam("image_url"), updated_at=bindparam("updated_at")),
            changed,
        )
    return ids, new_ids, len(changed)
