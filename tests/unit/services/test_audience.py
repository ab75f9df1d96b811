"""Song audience: staleness and the SVG plot (pure), fetch-and-store against the emulator on SQLite,
and when a refresh asks Airflow for a run (Airflow's side is faked here; the integration test runs it)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, insert, select, update

from chartsync.services import audience
from chartsync.seam import orchestration
from chartsync.services.audience import AudienceView, TrackNotFound
from chartsync.store.tables import track, track_audience
from chartsync.soundcharts.client import SoundchartsClient, SoundchartsMalformedResponse
from conftest import migrated_sqlite

SVG = "{http://www.w3.org/2000/svg}"
NOW = datetime(2026, 3, 10, 12, tzinfo=UTC)


# -- pure --------------------------------------------------------------------------------------------
def test_staleness_is_missing_or_older_than_seven_days():
    assert audience.is_stale(None, NOW)
    assert audience.is_stale(NOW - timedelta(days=7, seconds=1), NOW)
    assert not audience.is_stale(NOW - timedelta(days=6, hours=23), NOW)
    assert not audience.is_stale((NOW - timedelta(days=1)).replace(tzinfo=None), NOW)  # SQLite's naive UTC


def test_nice_ticks_and_short_numbers():
    assert audience.nice_ticks(9_300_000) == [0, 2e6, 4e6, 6e6, 8e6, 10e6]
    assert audience.nice_ticks(0) == [0.0, 1.0]
    assert audience.nice_ticks(3.2)[-1] >= 3.2
    assert [audience.short_number(v) for v in (0, 950, 12_500, 2_000_000, 3.5e9)] == ["0", "950", "12.5k", "2M",
                                                                                     "3.5B"]


def view(series) -> AudienceView:
    return AudienceView("abc-123", "Neon <Rain>", "Ava & Leo", series, NOW, False, False)


def test_svg_plot_has_one_line_per_platform_axes_and_an_accessible_title():
    day = date(2026, 1, 1)
    series = {"spotify": [(day + timedelta(days=i), 1000 * i) for i in range(30)],
              "deezer": [(day + timedelta(days=i), 80 * i) for i in range(10, 30)],
              "shazam": [], "apple-music": [], "youtube": []}
    svg = audience.svg_plot(view(series))
    root = ET.fromstring(svg)  # well-formed, names escaped
    assert root.tag == f"{SVG}svg" and root.get("role") == "img"
    title_id, desc_id = root.get("aria-labelledby").split()
    assert root.find(f"{SVG}title").get("id") == title_id
    assert root.find(f"{SVG}title").text == "Audience of Neon <Rain> by Ava & Leo"
    assert root.find(f"{SVG}desc").get("id") == desc_id
    lines = root.findall(f"{SVG}polyline")
    assert [line.find(f"{SVG}title").text for line in lines] == ["Spotify", "Deezer"]
    assert len(lines[0].get("points").split()) == 30
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "Cumulative plays" in texts and any(t.startswith("Date (2026-01-01 to 2026-01-30)") for t in texts)
    assert "Jan 01" in texts and "30k" in texts
    assert "<script" not in svg and "http" not in svg.replace("http://www.w3.org/2000/svg", "")


def test_svg_plot_without_data_says_so():
    root = ET.fromstring(audience.svg_plot(view({p: [] for p in audience.PLATFORMS})))
    assert root.find(f"{SVG}polyline") is None
    assert "No audience data yet" in [t.text for t in root.iter(f"{SVG}text")]


# -- on a chart DB, against the emulator ----------------------------------------------------------
@pytest.fixture
def client(emulator, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_SOUNDCHARTS_DEFAULT", json.dumps(
        {"conn_type": "http", "host": emulator.url, "login": "soundcharts", "password": "soundcharts"}))
    return SoundchartsClient(max_attempts=2)


@pytest.fixture
def song(tmp_path, client):
    """A charted song of the emulator, stored as a track."""
    engine = migrated_sqlite(tmp_path / 'chart.db')
    entry = client.ranking("spotify-top-200-global-daily").entries[0]
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(insert(track).values(song_uuid=entry.song_uuid, name=entry.song_name,
                                          credit_name=entry.credit_name, created_at=now, updated_at=now))
    return engine, entry.song_uuid


@pytest.fixture
def airflow_runs(monkeypatch):
    """A stand-in for the Airflow side: records triggers, reports the active run."""
    class Runs:
        def __init__(self):
            self.active: orchestration.KeyedRun | None = None
            self.triggered: list[tuple] = []

        def trigger(self, dag_id, key, conf, user, note=None):
            self.triggered.append((dag_id, key, conf, user))
            self.active = orchestration.KeyedRun(f"manual__{key}__20260310", "queued", created=True)
            return self.active

    runs = Runs()
    monkeypatch.setattr(orchestration, "active_keyed_run", lambda dag_id, key: runs.active)
    monkeypatch.setattr(orchestration, "trigger_keyed_run", runs.trigger)
    return runs


def test_refresh_stores_every_platform_in_one_go(song, client, emulator_admin, airflow_runs):
    engine, uuid = song
    result = audience.refresh_song(engine, client, uuid)
    assert set(result.points) == set(audience.PLATFORMS) and result.api_requests == 5  # one call a platform
    assert len(set(result.points.values())) == 1 and result.points["spotify"] > 0  # the days since release
    shown = audience.audience_view(engine, uuid)
    assert set(shown.series) == set(audience.PLATFORMS)
    assert not shown.is_stale and not shown.is_refreshing
    spotify = shown.series["spotify"]
    assert spotify == sorted(spotify) and all(a[1] <= b[1] for a, b in zip(spotify, spotify[1:]))  # cumulative
    audience.refresh_song(engine, client, uuid)  # a second refresh replaces the days, no duplicates
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(track_audience)).scalar() == sum(result.points.values())


def test_malformed_platform_fails_and_writes_nothing(song, client, emulator_admin, airflow_runs):
    engine, uuid = song
    emulator_admin.fault(kind="malformed", path_contains="/audience/shazam")
    with pytest.raises(SoundchartsMalformedResponse):
        audience.refresh_song(engine, client, uuid)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(track_audience)).scalar() == 0
        assert conn.execute(select(track.c.audience_fetched_at)).scalar() is None
    assert audience.audience_view(engine, uuid).is_stale


def test_request_refresh_triggers_only_for_missing_or_stale_data(song, client, airflow_runs):
    engine, uuid = song
    first = audience.request_refresh(engine, uuid, "ops")
    assert first.status == "triggered" and first.run_id == f"manual__audience__{uuid}__20260310"
    assert airflow_runs.triggered == [("chart_sync_audience", f"audience__{uuid}", {"song_uuid": uuid}, "ops")]
    assert audience.audience_view(engine, uuid).is_refreshing

    audience.refresh_song(engine, client, uuid)
    assert audience.request_refresh(engine, uuid, "ops").status == "fresh"
    with engine.begin() as conn:
        conn.execute(update(track).values(audience_fetched_at=datetime.now(UTC) - timedelta(days=8)))
    assert audience.request_refresh(engine, uuid, "ops").status == "triggered"
    assert len(airflow_runs.triggered) == 2


def test_unknown_song_is_refused_before_any_run(song, airflow_runs):
    engine, _ = song
    with pytest.raises(TrackNotFound):
        audience.request_refresh(engine, "not-a-charted-song", "ops")
    with pytest.raises(TrackNotFound):
        audience.audience_view(engine, "not-a-charted-song")
    assert airflow_runs.triggered == []
