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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine

from chartsync import settings
from chartsync.core.outcomes import SyncFinding
from chartsync.services import quota
from chartsync.store import tracks
from chartsync.store.tracks import BatchResult, DueTrack
from chartsync.soundcharts.client import SongMetadata, SoundchartsClient, SoundchartsNotFound

log = logging.getLogger(__name__)

MAX_AGE = settings.TRACK_METADATA_MAX_AGE
BATCH_SIZE = settings.TRACK_METADATA_BATCH_SIZE
# One try stays well inside the task's execution timeout; what is left is picked up by the next run.
MAX_TRACKS_PER_RUN = settings.TRACK_METADATA_MAX_PER_RUN

def due_tracks(engine: Engine, findings: Sequence[SyncFinding], now: datetime,
               limit: int = MAX_TRACKS_PER_RUN) -> list[DueTrack]:
    """Tracks on a chart that fetches metadata, never fetched or older than MAX_AGE (never-fetched first),
    each credited to the sync that found it."""
    return tracks.due_for_metadata(engine, findings, now, MAX_AGE, limit)


# -- fetching one batch ------------------------------------------------------------------------------
def metadata_values(song: SongMetadata) -> dict[str, Any]:
    """The track columns a song's metadata fills (``store.tracks.METADATA_FIELDS``)."""
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
    for number, batch in enumerate(tracks.chunks(due, batch_size), 1):
        before = client.request_count
        try:
            songs = fetch_batch(client, batch)
        finally:  # calls tied to no chart; a batch at a time, so a failed run's calls count too
            quota.record(engine, client, calls=client.request_count - before)
        values = {track_id: song and metadata_values(song) for track_id, song in songs.items()}
        result = tracks.store_metadata_batch(engine, batch, values, now())
        result.api_requests = client.request_count - before
        run.add(result)
        log.info("batch %d/%d: %d tracks, created=%d updated=%d unchanged=%d missing=%d, %d API requests",
                 number, total, len(batch), result.created, result.updated, result.unchanged, result.missing,
                 result.api_requests)
    return run
