"""Rankings, their entries and the tracks they name: stored in one transaction (write side), and
one chart's ranking for a period as the ranking page shows it (read side).

Idempotent: a period stored twice with the same API data changes no row and reports zero
created and zero updated.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Protocol

from sqlalchemy import Connection, Engine, asc, bindparam, delete, desc, func, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from chartsync.core.outcomes import SyncResult
from chartsync.core.paging import Page
from chartsync.core.trends import TRENDS, trend, weeks_on_chart
from chartsync.store.tables import chart, chart_ranking, chart_ranking_entry, track

PAGE_SIZE = 100
SORTS = {
    "position": chart_ranking_entry.c.position,
    "previous": chart_ranking_entry.c.previous_position,
    "weeks": chart_ranking_entry.c.weeks_on_chart,
    "streams": chart_ranking_entry.c.streams,
    "track": track.c.name,
}


class RankingNotFound(LookupError):
    pass


@dataclass(frozen=True)
class EntryRow:
    position: int
    previous_position: int | None
    trend: str
    weeks_on_chart: int | None
    streams: int | None
    song_uuid: str
    track_name: str
    artists: str

    @property
    def movement(self) -> int | None:
        if self.previous_position is None:
            return None
        return self.previous_position - self.position


@dataclass(frozen=True)
class RankingPage:
    chart_id: int
    slug: str
    chart_name: str
    platform: str
    period: date
    fetched_at: datetime
    entry_count: int
    previous_period: date | None
    next_period: date | None
    trend_counts: dict[str, int]
    entry_page: Page[EntryRow]  # the entries after the filter and search, one page of them
    filters: dict = field(default_factory=dict)

    @property
    def entries(self) -> list[EntryRow]:
        return self.entry_page.items

    @property
    def matching(self) -> int:
        return self.entry_page.total

    @property
    def page(self) -> int:
        return self.entry_page.page

    @property
    def pages(self) -> int:
        return self.entry_page.pages


def ranking_page(engine: Engine, chart_id: int, period: date | None = None, *, sort: str = "position",
                 descending: bool = False, trend: str | None = None, search: str | None = None,
                 page: int = 1, page_size: int = PAGE_SIZE) -> RankingPage:
    """The ranking of ``period`` (default: the newest stored), sorted, filtered, searched and paged."""
    if sort not in SORTS:
        raise ValueError(f"sort must be one of {', '.join(SORTS)}")
    if trend is not None and trend not in TRENDS:
        raise ValueError(f"trend must be one of {', '.join(TRENDS)}")
    r, e = chart_ranking, chart_ranking_entry
    with engine.connect() as conn:
        head = conn.execute(select(chart.c.slug, chart.c.name, chart.c.platform).where(chart.c.id == chart_id)).first()
        if head is None:
            raise RankingNotFound(f"unknown chart {chart_id}")
        when = period or conn.execute(select(func.max(r.c.period)).where(r.c.chart_id == chart_id)).scalar()
        ranking = conn.execute(select(r).where(r.c.chart_id == chart_id, r.c.period == when)).first()
        if ranking is None:
            raise RankingNotFound(f"{head.slug} has no stored ranking for {when or 'any period'}")
        previous = conn.execute(select(func.max(r.c.period)).where(r.c.chart_id == chart_id, r.c.period < when)).scalar()
        following = conn.execute(select(func.min(r.c.period)).where(r.c.chart_id == chart_id, r.c.period > when)).scalar()
        counts = dict(conn.execute(select(e.c.trend, func.count()).where(e.c.ranking_id == ranking.id)
                                   .group_by(e.c.trend)).all())
        query = select(e, track.c.song_uuid, track.c.name.label("track_name"), track.c.credit_name,
                       track.c.artists).join(track, track.c.id == e.c.track_id).where(e.c.ranking_id == ranking.id)
        if trend:
            query = query.where(e.c.trend == trend)
        if search:
            pattern = f"%{search.strip().lower()}%"
            query = query.where(or_(func.lower(track.c.name).like(pattern),
                                    func.lower(func.coalesce(track.c.credit_name, "")).like(pattern)))
        matching = conn.execute(select(func.count()).select_from(query.subquery())).scalar()
        pages = max(1, -(-matching // page_size))
        page = min(max(1, page), pages)
        order = desc(SORTS[sort]) if descending else asc(SORTS[sort])
        rows = conn.execute(query.order_by(order, e.c.position).limit(page_size).offset((page - 1) * page_size))
        entries = [
            EntryRow(row.position, row.previous_position, row.trend, row.weeks_on_chart, row.streams,
                     row.song_uuid, row.track_name, _artists(row.artists, row.credit_name))
            for row in rows
        ]
    return RankingPage(
        chart_id=chart_id, slug=head.slug, chart_name=head.name, platform=head.platform, period=when,
        fetched_at=ranking.fetched_at, entry_count=ranking.entry_count, previous_period=previous,
        next_period=following, trend_counts={t: counts.get(t, 0) for t in TRENDS},
        entry_page=Page(entries, matching, page_size, (page - 1) * page_size),
        filters={"sort": sort, "descending": descending, "trend": trend, "search": search},
    )


def _artists(artists, credit_name: str | None) -> str:
    if artists:
        return ", ".join(a.get("name", "") for a in artists if isinstance(a, dict)) or (credit_name or "")
    return credit_name or ""


# -- write side ------------------------------------------------------------------------------------
class FetchedEntry(Protocol):
    """What the store needs of one fetched entry (``soundcharts.models.RankingEntry`` has it)."""

    song_uuid: str
    song_name: str
    credit_name: str | None
    image_url: str | None
    position: int
    previous_position: int | None
    entry_state: str | None
    time_on_chart: int | None
    time_on_chart_unit: str | None
    metric: int | None


class FetchedRanking(Protocol):
    """What the store needs of one fetched ranking (``soundcharts.models.Ranking`` has it)."""

    ranking_date: str
    entries: Sequence[FetchedEntry]

    @property
    def period(self) -> date: ...


def store_ranking(conn: Connection, chart_id: int, ranking: FetchedRanking, now: datetime) -> SyncResult:
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


_ENTRY_FIELDS = ("position", "previous_position", "trend", "time_on_chart", "time_on_chart_unit",
                 "weeks_on_chart", "streams", "track_id")


def _entry_row(entry: FetchedEntry, track_id: int) -> dict:
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
    return (pg_insert if conn.dialect.name == "postgresql" else sqlite_insert)(table)


def _upsert_tracks(
    conn: Connection, entries: Sequence[FetchedEntry], now: datetime
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
        conn.execute(
            update(track)
            .where(track.c.id == bindparam("b_id"))
            .values(name=bindparam("name"), credit_name=bindparam("credit_name"),
                    image_url=bindparam("image_url"), updated_at=bindparam("updated_at")),
            changed,
        )
    return ids, new_ids, len(changed)
