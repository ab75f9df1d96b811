"""Rankings, their entries and the tracks they name, stored in one transaction (the write side; the ranking
page's reads are ``store.ranking_pages``).

Idempotent: a period stored twice with the same API data changes no row and reports zero
created and zero updated. The claim of a period can also read what the ranking's quality checks
compare with (``claim_period(quality=True)``), and ``store_claimed`` can write the ranking's quality row
(``store.quality``'s statement) with its entries.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import partial
from typing import Protocol

from psycopg2.extras import execute_values
from sqlalchemy import Connection, bindparam, delete, insert, select, update
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from chartsync import settings
from chartsync.core.entry import RankingEntry
from chartsync.core.outcomes import SyncResult
from chartsync.core.quality import QualityContext, RankingQuality
from chartsync.core.trends import trend, weeks_on_chart
from chartsync.store.driver import driver_cursor
from chartsync.store.quality import row_statement, save_quality
from chartsync.store.tables import chart, chart_ranking, chart_ranking_entry, chart_ranking_quality, track


class FetchedRanking(Protocol):
    """What the store needs of one fetched ranking (``soundcharts.models.Ranking`` has it)."""

    ranking_date: str
    entries: Sequence[RankingEntry]

    @property
    def period(self) -> date: ...


def store_ranking(conn: Connection, chart_id: int, ranking: FetchedRanking, now: datetime) -> SyncResult:
    """Upsert tracks, the ranking and its entries inside the caller's transaction.

    A stored period is compared with what the API says, so the same data again writes no row and a
    stored ranking changed since is repaired. On PostgreSQL a new period costs three statements in plain
    SQL on the driver's cursor (claim the period and read its tracks, insert the new tracks, COPY the
    entries): ``benchmarks/ingest.py``. Of two syncs of one period at once, the second waits for the
    first (at the claim) and then compares. ``claim_period`` then ``store_claimed``, for a caller with
    something to decide between the two (``services.sync`` checks the ranking there).
    """
    return store_claimed(conn, claim_period(conn, chart_id, ranking, now), ranking, now)


@dataclass(frozen=True)
class Claim:
    """A period claimed for a fetched ranking (``claim_period``): what ``store_claimed`` goes on from."""

    chart_id: int
    ranking_id: int | None  # the new ranking row; None when the period was stored already
    stored_tracks: dict[str, tuple]  # uuid -> (id, name, credit_name, image_url): the ranking's songs stored
    quality: QualityContext | None = None  # what the ranking's soft checks compare with, when asked for


def claim_period(conn: Connection, chart_id: int, ranking: FetchedRanking, now: datetime, *,
                 quality: bool = False) -> Claim:
    """Insert the ranking row unless the period is stored, and read the ranking's stored tracks; with
    ``quality``, also what its quality checks compare with (``core.quality.QualityContext``: the chart,
    the newest stored period before and where this ranking's songs stood in it, the recent churn), in the
    same statement on PostgreSQL. Nothing else is written yet: a caller that raises now leaves nothing."""
    uuids = list(dict.fromkeys(e.song_uuid for e in ranking.entries))
    claim = {"chart_id": chart_id, "period": ranking.period, "ranking_date": ranking.ranking_date,
             "entry_count": len(ranking.entries), "fetched_at": now}
    if conn.dialect.name == "postgresql":
        claimed_id, stored, context = _claim_on_postgresql(conn, claim, uuids, quality)
    else:
        claimed_id, stored, context = _claim_on_sqlite(conn, claim, uuids, quality)
    return Claim(chart_id, claimed_id, stored, context)


def store_claimed(conn: Connection, claim: Claim, ranking: FetchedRanking, now: datetime,
                  measured: RankingQuality | None = None) -> SyncResult:
    """Store the claimed period's ranking: new tracks, changed names, the entries (or, for a period stored
    already, compare and repair); with ``measured`` (``core.quality.measure``), its quality row too
    (``store.quality``), on PostgreSQL in the round trip of the entries' COPY when there is one."""
    period = ranking.period
    entries = sorted(ranking.entries, key=_by_position)
    wanted = {e.song_uuid: (e.song_name, e.credit_name, e.image_url) for e in entries}
    track_ids, new_ids, tracks_updated = _upsert_tracks(conn, wanted, claim.stored_tracks, now)
    rows = [(e.position, e.previous_position, trend(e.position, e.previous_position, e.entry_state), e.time_on_chart,
             e.time_on_chart_unit, weeks_on_chart(e.time_on_chart, e.time_on_chart_unit), e.metric,
             track_ids[e.song_uuid]) for e in entries]  # _ENTRY_FIELDS
    created = updated = 0
    if claim.ranking_id is not None:
        ranking_id, created = claim.ranking_id, 1
    else:
        ranking_id, stored = _stored_entries(conn, claim.chart_id, period)
        if stored == rows:
            rows = []
        else:
            conn.execute(delete(chart_ranking_entry).where(chart_ranking_entry.c.ranking_id == ranking_id))
            conn.execute(
                update(chart_ranking)
                .where(chart_ranking.c.id == ranking_id)
                .values(entry_count=len(rows), fetched_at=now, ranking_date=ranking.ranking_date)
            )
            updated = 1
    quality_row = None
    if measured is not None and rows and conn.dialect.name == "postgresql":
        quality_row = partial(row_statement, chart_id=claim.chart_id, period=period, quality=measured, now=now,
                              claimed_id=claim.ranking_id)
    if rows:
        _insert_entries(conn, ranking_id, rows, then=quality_row)
    if measured is not None and quality_row is None:
        save_quality(conn, claim.chart_id, period, measured, now, claimed_id=claim.ranking_id)
    return SyncResult(
        period=period,
        rankings_created=created,
        rankings_updated=updated,
        entries_written=len(rows),
        tracks_created=len(new_ids),
        tracks_updated=tracks_updated,
        new_track_ids=tuple(sorted(new_ids)),
        quality_flags=() if measured is None else measured.flags,
    )


def _by_position(entry: RankingEntry) -> int:
    return entry.position


_ENTRY_FIELDS = ("position", "previous_position", "trend", "time_on_chart", "time_on_chart_unit",
                 "weeks_on_chart", "streams", "track_id")

# The PostgreSQL side is plain SQL on the driver's cursor: SQLAlchemy's compiling of these statements and
# its handling of their parameters and rows cost more than the database's work on them.
_STORED_TRACKS_SQL = """
SELECT song_uuid, id, name, credit_name, image_url FROM track WHERE song_uuid = ANY(%(uuids)s::text[])
"""


def _claim_sql(context: str = "NULL") -> str:
    """The claim: the first row (song_uuid NULL), read first (a second sync of the period waits there), with
    ``context`` in its last column."""
    return f"""
WITH claimed AS (
    INSERT INTO chart_ranking (chart_id, period, ranking_date, entry_count, fetched_at)
    VALUES (%(chart_id)s, %(period)s, %(ranking_date)s, %(entry_count)s, %(fetched_at)s)
    ON CONFLICT (chart_id, period) DO NOTHING
    RETURNING id
)
SELECT NULL, id, NULL, NULL, {context} FROM claimed
UNION ALL {_STORED_TRACKS_SQL}"""


_CLAIM_SQL = _claim_sql()
# What the ranking's quality checks compare with, as JSON (NULL: no such chart): the chart's platform, size
# and frequency, the newest stored period before this one, its entries' track ids and positions (two arrays
# of one pass, so aligned; [null, null] without entries), and the new_share of the chart's last
# QUALITY_CHURN_HISTORY checked rankings before this one, newest first. Read by the statement that claims
# the period, on the claim's row (a statement of its own costs a round trip and a plan more, a branch of
# the UNION more to analyse: benchmarks/ingest.py measures what the checks add); a period stored already
# reads it with its stored tracks, in the statement that reads those again anyway. varchar, as the other
# rows' column is: branches of one type are appended as they are, not planned as subqueries of their own.
_QUALITY_CONTEXT_SQL = """(
    SELECT json_build_array(c.platform, c.max_results, c.frequency, p.period,
        (SELECT json_build_array(array_agg(track_id), array_agg(position)) FROM chart_ranking_entry
         WHERE ranking_id = p.id),
        ARRAY(SELECT q.new_share FROM chart_ranking_quality q
              WHERE q.chart_id = c.id AND q.period < %(period)s ORDER BY q.period DESC LIMIT %(history)s))::varchar
    FROM chart c
    LEFT JOIN LATERAL (SELECT id, period FROM chart_ranking WHERE chart_id = c.id AND period < %(period)s
                       ORDER BY period DESC LIMIT 1) p ON true
    WHERE c.id = %(chart_id)s
)"""
_CLAIM_WITH_QUALITY_SQL = _claim_sql(_QUALITY_CONTEXT_SQL)
_STORED_TRACKS_WITH_QUALITY_SQL = f"{_STORED_TRACKS_SQL}UNION ALL SELECT NULL, NULL, NULL, NULL, {_QUALITY_CONTEXT_SQL}"
# ON CONFLICT DO NOTHING: another chart's sync may insert the same new song concurrently (both write in
# song order, so neither waits for a row the other one waits for).
_INSERT_TRACKS_SQL = """
INSERT INTO track (song_uuid, name, credit_name, image_url, created_at, updated_at) VALUES %s
ON CONFLICT (song_uuid) DO NOTHING
RETURNING id, song_uuid
"""


def _claim_on_postgresql(conn: Connection, claim: dict, uuids: list[str],
                         quality: bool) -> tuple[int | None, dict[str, tuple], QualityContext | None]:
    """The claimed ranking id (None: stored already), the stored tracks (uuid -> (id, name, credit_name,
    image_url)) and, with ``quality``, the quality context (``_QUALITY_CONTEXT_SQL``): one statement for a new
    period, two for one stored already."""
    params = {**claim, "uuids": _text_array(uuids), "history": settings.QUALITY_CHURN_HISTORY}
    with driver_cursor(conn, "INSERT chart_ranking") as cursor:
        cursor.execute(_CLAIM_WITH_QUALITY_SQL if quality else _CLAIM_SQL, params)
        returned = cursor.fetchall()
        claimed_id = context = None
        if returned and returned[0][0] is None:  # the claim's row
            claimed_id, context = returned[0][1], returned[0][4]
        if claimed_id is None:  # it may have waited for another sync of the period: read what that one stored
            cursor.execute(_STORED_TRACKS_WITH_QUALITY_SQL if quality else _STORED_TRACKS_SQL, params)
            returned = cursor.fetchall()
            context = returned.pop()[4] if quality else None
    stored = {row[0]: row[1:] for row in returned if row[0] is not None}
    return claimed_id, stored, _quality_context(context and json.loads(context), stored) if quality else None


def _claim_on_sqlite(conn: Connection, claim: dict, uuids: list[str],
                     quality: bool) -> tuple[int | None, dict[str, tuple], QualityContext | None]:
    """As ``_claim_on_postgresql``, in several statements."""
    claimed_id = conn.execute(
        sqlite_insert(chart_ranking).values(**claim)
        .on_conflict_do_nothing(index_elements=["chart_id", "period"])
        .returning(chart_ranking.c.id)
    ).scalar()
    t = track.c
    rows = conn.execute(select(t.song_uuid, t.id, t.name, t.credit_name, t.image_url).where(t.song_uuid.in_(uuids)))
    stored = {row[0]: tuple(row[1:]) for row in rows}
    if not quality:
        return claimed_id, stored, None
    c, r, e, q = chart.c, chart_ranking.c, chart_ranking_entry.c, chart_ranking_quality.c
    head = conn.execute(select(c.platform, c.max_results, c.frequency).where(c.id == claim["chart_id"])).first()
    if head is None:
        return claimed_id, stored, _quality_context(None, stored)
    before = (r.chart_id == claim["chart_id"]) & (r.period < claim["period"])
    previous = conn.execute(select(r.id, r.period).where(before).order_by(r.period.desc()).limit(1)).first()
    entries = [] if previous is None else conn.execute(
        select(e.track_id, e.position).where(e.ranking_id == previous.id)).all()
    shares = conn.execute(select(q.new_share).where(q.chart_id == claim["chart_id"], q.period < claim["period"])
                          .order_by(q.period.desc()).limit(settings.QUALITY_CHURN_HISTORY)).scalars().all()
    previous_entries = [[row[0] for row in entries], [row[1] for row in entries]] if entries else None
    return claimed_id, stored, _quality_context([*head, previous and previous.period.isoformat(), previous_entries,
                                                 shares], stored)


def _quality_context(values: list | None, stored: dict[str, tuple]) -> QualityContext:
    """The quality context from the claim's values (None: no such chart); where the ranking's stored songs
    stood in the previous period (a song new to the warehouse cannot have been in it). A previous period
    without entries is none: there is nothing to compare with."""
    if values is None:
        return QualityContext()
    platform, size, frequency, previous, previous_entries, shares = values
    track_ids, positions = previous_entries or (None, None)
    if not track_ids:
        return QualityContext(platform, size, frequency, recent_new_shares=tuple(shares))
    at = dict(zip(track_ids, positions))
    return QualityContext(platform=platform, expected_count=size, frequency=frequency,
                          previous_period=date.fromisoformat(previous),
                          previous_positions={uuid: at[row[0]] for uuid, row in stored.items() if row[0] in at},
                          recent_new_shares=tuple(shares))


def _text_array(values: list[str]) -> str:
    """A text[] literal: one parameter the server parses at once, where psycopg2 would send ARRAY[...] of
    200 literals for the parser. Escaped in one pass over the values joined by NUL (which PostgreSQL text
    cannot hold); value by value when one holds a NUL (the driver refuses that one)."""
    joined = "\x00".join(values)
    if values and joined.count("\x00") == len(values) - 1:
        return '{"' + joined.replace("\\", "\\\\").replace('"', '\\"').replace("\x00", '","') + '"}'
    return "{" + ",".join(['"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values]) + "}"


def _upsert_tracks(conn: Connection, wanted: dict[str, tuple], stored: dict[str, tuple],
                   now: datetime) -> tuple[dict[str, int], set[int], int]:
    """Insert unseen tracks, refresh changed names; returns ids by uuid, new ids, updated count.

    ``wanted`` and ``stored`` map a song's uuid to its (name, credit_name, image_url), ``stored`` with the
    track id first."""
    ids = {uuid: row[0] for uuid, row in stored.items()}
    fresh = sorted((uuid, *names, now, now) for uuid, names in wanted.items() if uuid not in stored)
    new_ids: set[int] = set()
    if fresh:
        for track_id, uuid in _insert_tracks(conn, fresh):
            ids[uuid] = track_id
            new_ids.add(track_id)
        raced = [uuid for uuid, *_ in fresh if uuid not in ids]
        if raced:
            ids.update(conn.execute(select(track.c.song_uuid, track.c.id).where(track.c.song_uuid.in_(raced))).all())
    changed = [
        {"b_id": row[0], "name": wanted[uuid][0], "credit_name": wanted[uuid][1], "image_url": wanted[uuid][2],
         "updated_at": now}
        for uuid, row in sorted(stored.items()) if row[1:] != wanted[uuid]
    ]
    if changed:
        conn.execute(
            update(track)
            .where(track.c.id == bindparam("b_id"))
            .values(name=bindparam("name"), credit_name=bindparam("credit_name"),
                    image_url=bindparam("image_url"), updated_at=bindparam("updated_at")),
            changed,
        )
    return ids, new_ids, len(changed)


def _insert_tracks(conn: Connection, fresh: list[tuple]) -> list[tuple]:
    """Insert (song_uuid, name, credit_name, image_url, created_at, updated_at) rows unless the song is
    stored; (id, song_uuid) of those inserted."""
    if conn.dialect.name == "postgresql":
        with driver_cursor(conn, "INSERT track") as cursor:
            return execute_values(cursor, _INSERT_TRACKS_SQL, fresh, page_size=len(fresh), fetch=True)
    columns = ("song_uuid", "name", "credit_name", "image_url", "created_at", "updated_at")
    return conn.execute(
        sqlite_insert(track).on_conflict_do_nothing(index_elements=["song_uuid"]).returning(track.c.id, track.c.song_uuid),
        [dict(zip(columns, row)) for row in fresh],
    ).all()


def _stored_entries(conn: Connection, chart_id: int, period: date) -> tuple[int, list[tuple]]:
    """The stored ranking's id and its entries (``_ENTRY_FIELDS``), by position."""
    r, e = chart_ranking, chart_ranking_entry
    rows = conn.execute(
        select(r.c.id, *(e.c[name] for name in _ENTRY_FIELDS))
        .select_from(r.outerjoin(e, e.c.ranking_id == r.c.id))
        .where(r.c.chart_id == chart_id, r.c.period == period)
        .order_by(e.c.position)
    ).all()
    return rows[0].id, [tuple(row[1:]) for row in rows if row.position is not None]


_COPY_ENTRIES_SQL = f"COPY {chart_ranking_entry.name} ({', '.join((*_ENTRY_FIELDS, 'ranking_id'))}) FROM STDIN"


def _insert_entries(conn: Connection, ranking_id: int, rows: list[tuple],
                    then: Callable[[object], str] | None = None) -> None:
    """Insert the rows (``_ENTRY_FIELDS``): a COPY on PostgreSQL, where it is half the cost of an INSERT.

    ``then`` (PostgreSQL only) gives a statement, bound by the driver's cursor it is called with, to run after
    the COPY in the same query string: one round trip for both. The server runs such a string's commands in
    turn, stopping at an error; psycopg2 reads every result after the COPY's data and raises the first
    error."""
    columns = (*_ENTRY_FIELDS, "ranking_id")
    if conn.dialect.name != "postgresql":
        conn.execute(insert(chart_ranking_entry), [dict(zip(columns, (*row, ranking_id))) for row in rows])
        return
    with driver_cursor(conn, f"COPY {chart_ranking_entry.name}") as cursor:
        sql = _COPY_ENTRIES_SQL if then is None else f"{_COPY_ENTRIES_SQL};\n{then(cursor)}"
        cursor.copy_expert(sql, io.StringIO(_copy_text(rows, ranking_id)))


def _copy_text(rows: list[tuple], ranking_id: int) -> str:
    r"""The rows (``_ENTRY_FIELDS``) and ``ranking_id`` in COPY's text format: \N for NULL, the unit escaped
    once per distinct unit (trend is one of ``TRENDS``). Spelled out per column: three times quicker than
    a loop over the values."""
    end, null = f"\t{ranking_id}\n", r"\N"
    units = {unit: null if unit is None else unit.translate(_COPY_ESCAPES) for unit in {row[4] for row in rows}}
    return "".join([
        f"{position}\t{null if previous is None else previous}\t{trend_}\t{null if time is None else time}\t"
        f"{units[unit]}\t{null if weeks is None else weeks}\t{null if streams is None else streams}\t{track_id}{end}"
        for position, previous, trend_, time, unit, weeks, streams, track_id in rows])


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})  # COPY's text format
