"""The ``track`` table and what hangs off it: which tracks are due for metadata (and which sync found
them), a metadata batch written in one transaction, and a song's audience per platform."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, bindparam, delete, exists, insert, or_, select, update

from chartsync.core.outcomes import SyncFinding
from chartsync.store.tables import (
    chart_ranking,
    chart_ranking_entry,
    chart_sync_execution,
    chart_sync_schedule,
    track,
    track_audience,
)

METADATA_FIELDS = ("isrc", "artists", "release_date", "duration_seconds", "explicit", "genres", "labels",
                   "language_code")
T = TypeVar("T")


class TrackNotFound(LookupError):
    """No track with this song uuid in the warehouse (only charted songs have a page)."""


def _track(conn: Connection, song_uuid: str):
    row = conn.execute(select(track.c.id, track.c.name, track.c.credit_name, track.c.audience_fetched_at)
                       .where(track.c.song_uuid == song_uuid)).first()
    if row is None:
        raise TrackNotFound(f"no track with song uuid {song_uuid!r} in the warehouse")
    return row


def song(engine: Engine, song_uuid: str):
    """The track row of a song (id, name, credit_name, audience_fetched_at); TrackNotFound otherwise."""
    with engine.connect() as conn:
        return _track(conn, song_uuid)


def audience_of(engine: Engine, song_uuid: str) -> tuple[Any, dict[str, list[tuple[date, int]]]]:
    """The song's track row and its stored audience: platform -> (day, value), oldest first."""
    series: dict[str, list[tuple[date, int]]] = {}
    a = track_audience.c
    with engine.connect() as conn:
        row = _track(conn, song_uuid)
        for platform, day, value in conn.execute(
                select(a.platform, a.date, a.value).where(a.track_id == row.id, a.value.is_not(None))
                .order_by(a.platform, a.date)):
            series.setdefault(platform, []).append((day, value))
    return row, series


def store_audience(engine: Engine, song_uuid: str, series: Mapping[str, Mapping[date, int | None]],
                   now: datetime) -> dict[str, int]:
    """Replace the fetched platforms' days (platform -> day -> value) and stamp the track, in one transaction."""
    stored = {}
    with engine.begin() as conn:
        track_id = _track(conn, song_uuid).id
        for platform, values in series.items():
            if values:
                conn.execute(delete(track_audience).where(
                    track_audience.c.track_id == track_id, track_audience.c.platform == platform,
                    track_audience.c.date.between(min(values), max(values))))
                conn.execute(insert(track_audience), [
                    {"track_id": track_id, "platform": platform, "date": day, "value": value, "fetched_at": now}
                    for day, value in values.items()])
            stored[platform] = len(values)
        conn.execute(update(track).where(track.c.id == track_id).values(audience_fetched_at=now))
    return stored



# -- track metadata --------------------------------------------------------------------------------
@dataclass(frozen=True)
class DueTrack:
    id: int
    song_uuid: str
    has_metadata: bool
    execution_id: int | None  # the sync execution this track's metadata is credited to, if any


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def metadata_chart_ids(conn: Connection) -> set[int]:
    return set(conn.execute(select(chart_sync_schedule.c.chart_id)
                            .where(chart_sync_schedule.c.fetch_track_metadata.is_(True))).scalars())


def credited_tracks(conn: Connection, findings: Sequence[SyncFinding]) -> dict[int, int]:
    """track id -> the execution that found it: its new tracks first, then the rest of its ranking.

    Only findings on charts that fetch metadata count; the oldest execution wins a track two syncs found.
    """
    wanted = metadata_chart_ids(conn)
    findings = sorted((f for f in findings if f.chart_id in wanted), key=lambda f: f.execution_id)
    credit: dict[int, int] = {}
    for finding in findings:
        for track_id in finding.new_track_ids:
            credit.setdefault(track_id, finding.execution_id)
    ex, rk, en = chart_sync_execution, chart_ranking, chart_ranking_entry
    for part in chunks([f.execution_id for f in findings], 500):
        rows = conn.execute(
            select(ex.c.id, en.c.track_id)
            .join(rk, (rk.c.chart_id == ex.c.chart_id) & (rk.c.period == ex.c.period))
            .join(en, en.c.ranking_id == rk.c.id)
            .where(ex.c.id.in_(part)).order_by(ex.c.id)
        )
        for execution_id, track_id in rows:
            credit.setdefault(track_id, execution_id)
    return credit


def due_for_metadata(engine: Engine, findings: Sequence[SyncFinding], now: datetime, max_age: timedelta,
                     limit: int) -> list[DueTrack]:
    """Tracks on a chart that fetches metadata whose metadata is missing or older than ``max_age``.

    Never-fetched tracks come first, then the stalest; each is credited to the sync that found it.
    """
    on_metadata_chart = exists().where(
        chart_ranking_entry.c.track_id == track.c.id,
        chart_ranking.c.id == chart_ranking_entry.c.ranking_id,
        chart_sync_schedule.c.chart_id == chart_ranking.c.chart_id,
        chart_sync_schedule.c.fetch_track_metadata.is_(True),
    )
    fetched = track.c.metadata_fetched_at
    with engine.connect() as conn:
        credit = credited_tracks(conn, findings)
        rows = conn.execute(
            select(track.c.id, track.c.song_uuid, fetched)
            .where(or_(fetched.is_(None), fetched < now - max_age), on_metadata_chart)
            .order_by(fetched.asc().nulls_first(), track.c.id).limit(limit)
        ).all()
    return [DueTrack(r.id, r.song_uuid, r.metadata_fetched_at is not None, credit.get(r.id)) for r in rows]


@dataclass
class BatchResult:
    created: int = 0  # tracks that had no metadata yet
    updated: int = 0  # tracks whose stored metadata changed
    unchanged: int = 0
    missing: int = 0  # 404: Soundcharts has no such song (asked again after MAX_AGE)
    api_requests: int = 0
    credited: dict[int, list[int]] = field(default_factory=dict)  # execution id -> [created, updated]


def store_metadata_batch(engine: Engine, batch: Sequence[DueTrack], songs: Mapping[int, Mapping[str, Any] | None],
                         now: datetime) -> BatchResult:
    """Write the batch's changed fields (track id -> METADATA_FIELDS values, None: no such song), fetch
    times and execution counters in one transaction."""
    result = BatchResult()
    by_id = {due.id: due for due in batch}
    with engine.begin() as conn:
        stored = {row.id: row for row in conn.execute(
            select(track.c.id, *(track.c[name] for name in METADATA_FIELDS)).where(track.c.id.in_(list(by_id))))}
        changed, touched = [], []
        for track_id, song in songs.items():
            due = by_id[track_id]
            if song is None:
                result.missing += 1
                touched.append({"b_id": track_id})
                continue
            values = {name: song[name] for name in METADATA_FIELDS}
            old = stored.get(track_id)
            if old is not None and all(getattr(old, k) == v for k, v in values.items()) and due.has_metadata:
                result.unchanged += 1
                touched.append({"b_id": track_id})
                continue
            changed.append({"b_id": track_id, **values})
            kind = 1 if due.has_metadata else 0
            if kind:
                result.updated += 1
            else:
                result.created += 1
            if due.execution_id is not None:
                result.credited.setdefault(due.execution_id, [0, 0])[kind] += 1
        if changed:
            conn.execute(update(track).where(track.c.id == bindparam("b_id"))
                         .values(**{k: bindparam(k) for k in METADATA_FIELDS}, metadata_fetched_at=now,
                                 updated_at=now), changed)
        if touched:
            conn.execute(update(track).where(track.c.id == bindparam("b_id")).values(metadata_fetched_at=now),
                         touched)
        ex = chart_sync_execution
        for execution_id, (created, updated) in result.credited.items():
            conn.execute(update(ex).where(ex.c.id == execution_id).values(
                metadata_created=ex.c.metadata_created + created, metadata_updated=ex.c.metadata_updated + updated))
    return result
