"""Track metadata: ``/api/v2.25/song/{uuid}`` for tracks that are new or whose metadata is older
than 30 days, on charts whose schedule has ``fetch_track_metadata``.

Every sync task emits the rankings asset with an extra naming its execution rows and the tracks
it created (``rankings_event_extra``); the ``chart_sync_track_metadata`` DAG, scheduled on that
asset, reads those extras back (``findings_from_extras``) to credit what it fetches to the sync
that found the tracks, and also sweeps every other track that is due.

Tracks are fetched in batches inside ONE task: all songs of a batch are fetched first, then the
batch is written in one transaction together with the execution counters, so a failure leaves
no half-written batch, and a retry resumes where it stopped (written tracks are no longer due).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, bindparam, exists, or_, select, update

from chartsync.store.tables import (
    chart_ranking,
    chart_ranking_entry,
    chart_sync_execution,
    chart_sync_schedule,
    track,
)
from chartsync import settings
from chartsync.core.outcomes import SyncFinding
from chartsync.soundcharts.client import SongMetadata, SoundchartsClient, SoundchartsNotFound

log = logging.getLogger(__name__)

MAX_AGE = settings.TRACK_METADATA_MAX_AGE
BATCH_SIZE = settings.TRACK_METADATA_BATCH_SIZE
# One try stays well inside the task's execution timeout; what is left is picked up by the next run.
MAX_TRACKS_PER_RUN = settings.TRACK_METADATA_MAX_PER_RUN
METADATA_FIELDS = ("isrc", "artists", "release_date", "duration_seconds", "explicit", "genres", "labels",
                   "language_code")

T = TypeVar("T")


# -- which tracks are due --------------------------------------------------------------------------
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


def due_tracks(engine: Engine, findings: Sequence[SyncFinding], now: datetime,
               limit: int = MAX_TRACKS_PER_RUN) -> list[DueTrack]:
    """Tracks on a chart that fetches metadata whose metadata is missing or older than MAX_AGE.

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
            .where(or_(fetched.is_(None), fetched < now - MAX_AGE), on_metadata_chart)
            .order_by(fetched.asc().nulls_first(), track.c.id).limit(limit)
        ).all()
    return [DueTrack(r.id, r.song_uuid, r.metadata_fetched_at is not None, credit.get(r.id)) for r in rows]


# -- fetching and writing one batch ----------------------------------------------------------------
@dataclass
class BatchResult:
    created: int = 0  # tracks that had no metadata yet
    updated: int = 0  # tracks whose stored metadata changed
    unchanged: int = 0
    missing: int = 0  # 404: Soundcharts has no such song (asked again after MAX_AGE)
    api_requests: int = 0
    credited: dict[int, list[int]] = field(default_factory=dict)  # execution id -> [created, updated]


def metadata_values(song: SongMetadata) -> dict[str, Any]:
    return {"isrc": song.isrc, "artists": song.artists, "release_date": song.release_date,
            "duration_seconds": song.duration_seconds, "explicit": song.explicit, "genres": song.genres,
            "labels": song.labels, "language_code": song.language_code}


def fetch_batch(client: SoundchartsClient, batch: Sequence[DueTrack]) -> dict[int, SongMetadata | None]:
    """Every song of the batch (None: not found); any other API failure propagates, nothing is written."""
    songs: dict[int, SongMetadata | None] = {}
    for due in batch:
        try:
            songs[due.id] = client.song(due.song_uuid)
        except SoundchartsNotFound:
            log.warning("track %s (%s): Soundcharts has no such song; asking again in %s",
                        due.id, due.song_uuid, MAX_AGE)
            songs[due.id] = None
    return songs


def store_batch(engine: Engine, batch: Sequence[DueTrack], songs: Mapping[int, SongMetadata | None],
                now: datetime) -> BatchResult:
    """Write the batch's changed fields, fetch times and execution counters in one transaction."""
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
            values = metadata_values(song)
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


# -- one run ---------------------------------------------------------------------------------------
@dataclass
class MetadataRun:
    tracks: int = 0
    batches: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    missing: int = 0
    api_requests: int = 0
    credited: dict[int, list[int]] = field(default_factory=dict)
    batch_requests: list[int] = field(default_factory=list)  # API requests of each batch, in order

    def add(self, batch: BatchResult) -> None:
        self.batches += 1
        self.batch_requests.append(batch.api_requests)
        for name in ("created", "updated", "unchanged", "missing", "api_requests"):
            setattr(self, name, getattr(self, name) + getattr(batch, name))
        for execution_id, (created, updated) in batch.credited.items():
            total = self.credited.setdefault(execution_id, [0, 0])
            total[0] += created
            total[1] += updated

    def summary(self) -> dict[str, Any]:
        return {"tracks": self.tracks, "batches": self.batches, "created": self.created, "updated": self.updated,
                "unchanged": self.unchanged, "missing": self.missing, "api_requests": self.api_requests,
                "credited": {str(k): {"created": v[0], "updated": v[1]} for k, v in self.credited.items()}}


def refresh_metadata(engine: Engine, client: SoundchartsClient, findings: Sequence[SyncFinding] = (), *,
                     batch_size: int = BATCH_SIZE, limit: int = MAX_TRACKS_PER_RUN,
                     now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> MetadataRun:
    """Fetch and store metadata for every due track, batch by batch, logging progress."""
    due = due_tracks(engine, findings, now(), limit)
    run = MetadataRun(tracks=len(due))
    total = -(-len(due) // batch_size)
    credited = sum(1 for d in due if d.execution_id is not None)
    log.info("%d tracks due for metadata (%d found by %d triggering syncs), %d batches of up to %d",
             len(due), credited, len({f.execution_id for f in findings}), total, batch_size)
    for number, batch in enumerate(chunks(due, batch_size), 1):
        before = client.request_count
        songs = fetch_batch(client, batch)
        result = store_batch(engine, batch, songs, now())
        result.api_requests = client.request_count - before
        run.add(result)
        log.info("batch %d/%d: %d tracks, created=%d updated=%d unchanged=%d missing=%d, %d API requests",
                 number, total, len(batch), result.created, result.updated, result.unchanged, result.missing,
                 result.api_requests)
    return run
