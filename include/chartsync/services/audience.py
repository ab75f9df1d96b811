"""A song's audience per platform: what the song page shows, and its on-demand refresh.

The page (plugin) and the CLI call ``audience_view`` and ``request_refresh``. When the stored
audience is missing or older than ``MAX_AGE``, ``request_refresh`` triggers ONE run of the
``chart_sync_audience`` DAG for the song (every supported platform); while that run is queued or
running, further requests return it instead of creating another (see
``orchestration.trigger_keyed_run``). The run's task calls ``refresh_song``: all platforms are
fetched first, then written in one transaction. ``svg_plot`` draws the view server-side.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Engine

from chartsync import settings
from chartsync.core.timestamps import as_utc
from chartsync.seam import orchestration
from chartsync.settings import AUDIENCE_DAG_ID
from chartsync.services import quota
from chartsync.store import tracks
from chartsync.store.tracks import TrackNotFound
from chartsync.core.plots import Series, line_chart, nice_ticks, short_number  # noqa: F401 - nice_ticks re-exported
from chartsync.soundcharts.client import AudiencePoint, SoundchartsClient, SoundchartsNotFound

__all__ = ["AudienceRefresh", "AudienceView", "RefreshRequest", "TrackNotFound", "audience_view", "refresh_song",
           "request_refresh", "svg_plot"]

log = logging.getLogger(__name__)

PLATFORMS = ("spotify", "apple-music", "deezer", "shazam", "youtube")
PLATFORM_NAMES = {"spotify": "Spotify", "apple-music": "Apple Music", "deezer": "Deezer", "shazam": "Shazam",
                  "youtube": "YouTube"}
MAX_AGE = settings.AUDIENCE_MAX_AGE
WINDOW_DAYS = settings.AUDIENCE_WINDOW_DAYS


@dataclass(frozen=True)
class AudienceView:
    song_uuid: str
    name: str
    credit_name: str | None
    series: dict[str, list[tuple[date, int]]]  # every platform, oldest point first (empty: no data)
    fetched_at: datetime | None
    is_stale: bool  # missing or older than MAX_AGE
    is_refreshing: bool  # an audience run for this song is queued or running
    refresh_run_id: str | None = None

    @property
    def has_data(self) -> bool:
        return any(self.series.values())


@dataclass(frozen=True)
class RefreshRequest:
    song_uuid: str
    status: Literal["triggered", "already-refreshing", "fresh"]
    run_id: str | None = None
    run_state: str | None = None
    dag_paused: bool = False

    @property
    def message(self) -> str:
        if self.status == "fresh":
            return f"{self.song_uuid}: audience is fresh (less than {MAX_AGE.days} days old); nothing to do"
        verb = "triggered" if self.status == "triggered" else "already refreshing in"
        paused = f"; {AUDIENCE_DAG_ID} is paused: the run waits until it is unpaused" if self.dag_paused else ""
        return f"{self.song_uuid}: {verb} {AUDIENCE_DAG_ID} run {self.run_id} ({self.run_state}){paused}"


def is_stale(fetched_at: datetime | None, now: datetime) -> bool:
    return fetched_at is None or as_utc(fetched_at) < now - MAX_AGE


def run_key(song_uuid: str) -> str:
    return f"audience__{song_uuid}"


# -- service functions (plugin, CLI) -------------------------------------------------------------
def audience_view(engine: Engine, song_uuid: str, *, now: datetime | None = None) -> AudienceView:
    """The stored audience of a song, with its freshness and whether a refresh is under way."""
    now = now or datetime.now(UTC)
    song, stored = tracks.audience_of(engine, song_uuid)
    series: dict[str, list[tuple[date, int]]] = {p: [] for p in PLATFORMS} | stored
    active = orchestration.active_keyed_run(AUDIENCE_DAG_ID, run_key(song_uuid))
    fetched = as_utc(song.audience_fetched_at) if song.audience_fetched_at else None
    return AudienceView(song_uuid, song.name, song.credit_name, series, fetched, is_stale(fetched, now),
                        active is not None, active.run_id if active else None)


def request_refresh(engine: Engine, song_uuid: str, user: str, *, force: bool = False,
                    now: datetime | None = None) -> RefreshRequest:
    """Trigger one audience run for the song when its data is missing or stale (or ``force``)."""
    now = now or datetime.now(UTC)
    song = tracks.song(engine, song_uuid)
    if not force and not is_stale(song.audience_fetched_at, now):
        return RefreshRequest(song_uuid, "fresh")
    run = orchestration.trigger_keyed_run(AUDIENCE_DAG_ID, run_key(song_uuid), {"song_uuid": song_uuid}, user,
                                          note=f"audience refresh requested by {user}")
    status = "triggered" if run.created else "already-refreshing"
    log.info("audience of %s: %s run %s (%s)", song_uuid, status, run.run_id, run.state)
    return RefreshRequest(song_uuid, status, run.run_id, run.state, run.dag_paused)


# -- the DAG's work ------------------------------------------------------------------------------
@dataclass
class AudienceRefresh:
    song_uuid: str
    points: dict[str, int] = field(default_factory=dict)  # platform -> points stored (absent: not on it)
    api_requests: int = 0

    def summary(self) -> dict[str, Any]:
        return {"song_uuid": self.song_uuid, "points": self.points, "api_requests": self.api_requests}


def fetch_audience(client: SoundchartsClient, song_uuid: str, today: date) -> dict[str, list[AudiencePoint]]:
    """The last WINDOW_DAYS of every platform; a platform that 404s has no data for the song.

    Any other failure propagates before anything is written."""
    start = today - timedelta(days=WINDOW_DAYS - 1)
    series: dict[str, list[AudiencePoint]] = {}
    for platform in PLATFORMS:
        try:
            series[platform] = client.audience(song_uuid, platform, start, today)
        except SoundchartsNotFound:
            log.warning("%s: no audience on %s", song_uuid, platform)
    if not series:
        raise SoundchartsNotFound(f"song {song_uuid}: no audience on any platform")
    return series


def refresh_song(engine: Engine, client: SoundchartsClient, song_uuid: str,
                 *, today: date | None = None) -> AudienceRefresh:
    tracks.song(engine, song_uuid)  # fail before spending API calls on a song we do not have
    before = client.request_count
    now = datetime.now(UTC)
    try:
        series = fetch_audience(client, song_uuid, today or now.date())
    finally:  # a song's calls are tied to no chart
        quota.record(engine, client, calls=client.request_count - before)
    result = AudienceRefresh(song_uuid, tracks.store_audience(
        engine, song_uuid, {platform: {p.day: p.value for p in points} for platform, points in series.items()}, now),
                             client.request_count - before)
    log.info("audience of %s: %s points stored, %d API requests", song_uuid, result.points, result.api_requests)
    return result


# -- the plot (server-side SVG, no script) -------------------------------------------------------
COLOURS = {"spotify": "#1b9e4b", "apple-music": "#d6336c", "deezer": "#7b2cbf", "shazam": "#1c7ed6",
           "youtube": "#e8590c"}
DASHES = {"spotify": "", "apple-music": "6 3", "deezer": "2 3", "shazam": "8 3 2 3", "youtube": "1 2"}


def svg_plot(view: AudienceView, width: int = 720, height: int = 320) -> str:
    """One line per platform over time (plots.line_chart), with the platform's colour and dash."""
    title = f"Audience of {view.name}" + (f" by {view.credit_name}" if view.credit_name else "")
    lines = {p: pts for p, pts in view.series.items() if pts}
    desc = ("Cumulative plays per platform: " + "; ".join(
        f"{PLATFORM_NAMES.get(p, p)} {short_number(pts[-1][1])}" for p, pts in lines.items())
        if lines else "No audience data stored for this song yet.")
    series = [Series(PLATFORM_NAMES.get(p, p), pts, COLOURS.get(p), DASHES.get(p)) for p, pts in lines.items()]
    return line_chart(title, series, width=width, height=height, y_label="Cumulative plays", desc=desc,
                      empty_text="No audience data yet")
