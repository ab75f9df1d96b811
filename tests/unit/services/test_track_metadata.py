"""Track metadata: asset event extras (pure), and due tracks, batches and credits on a SQLite chart DB
fed by the emulator."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import func, insert, select, update

from chartsync.store.tables import (
    chart,
    chart_ranking,
    chart_ranking_entry,
    chart_sync_execution,
    chart_sync_schedule,
    track,
)
from chartsync.core.outcomes import RunRef
from chartsync.soundcharts.client import SoundchartsClient, SoundchartsMalformedResponse
from chartsync.services.sync import sync_period
from chartsync.core.outcomes import SyncFinding, findings_from_extras, rankings_event_extra
from chartsync.services.track_metadata import due_tracks, refresh_metadata
from conftest import migrated_sqlite

PERIOD = date.today() - timedelta(days=5)
WITH_METADATA = (1, "apple-music-top-100-us-daily")
WITHOUT_METADATA = (2, "deezer-top-100-fr-daily")


# -- pure: the asset event extra -------------------------------------------------------------------
def test_event_extra_round_trips_to_findings():
    results = [SimpleNamespace(execution_id=7, period=date(2026, 3, 1), new_track_ids=(3, 4)),
               SimpleNamespace(execution_id=None, period=date(2026, 3, 2), new_track_ids=(5,))]  # not recorded
    extra = rankings_event_extra(2, "some-chart", results)
    assert json.loads(json.dumps(extra)) == extra  # stored as JSON by Airflow
    assert extra["syncs"] == [{"execution_id": 7, "period": "2026-03-01", "new_track_ids": [3, 4]}]
    assert findings_from_extras([extra]) == [SyncFinding(7, 2, (3, 4))]


def test_foreign_or_broken_extras_name_no_finding():
    assert findings_from_extras([None, {}, {"chart_id": "x"}, {"chart_id": 1, "syncs": [{"period": "x"}, 3]},
                                 {"from": "a user"}]) == []


# -- on a chart DB -----------------------------------------------------------------------------------
@pytest.fixture
def engine(tmp_path):
    engine = migrated_sqlite(tmp_path / 'chart.db')
    now = datetime.now(UTC)
    with engine.begin() as conn:
        for (chart_id, slug), fetch in ((WITH_METADATA, True), (WITHOUT_METADATA, False)):
            conn.execute(insert(chart).values(id=chart_id, slug=slug, name=slug, platform=slug.split("-")[0],
                                              frequency="daily", created_at=now))
            conn.execute(insert(chart_sync_schedule).values(
                chart_id=chart_id, sync_frequency="daily", fetch_track_metadata=fetch,
                history_start=PERIOD, created_at=now, updated_at=now))
    return engine


@pytest.fixture
def client(emulator, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_SOUNDCHARTS_DEFAULT", json.dumps(
        {"conn_type": "http", "host": emulator.url, "login": "soundcharts", "password": "soundcharts"}))
    return SoundchartsClient(max_attempts=2)


def sync(engine, client, chart_id_slug):
    chart_id, slug = chart_id_slug
    result = sync_period(engine, client, RunRef(chart_id, f"chart_sync__{slug}", "manual__t"), slug, PERIOD)
    return findings_from_extras([rankings_event_extra(chart_id, slug, [result])]), result


def song_requests(emulator_admin) -> dict[str, int]:
    return {p: n for p, n in emulator_admin.requests()["by_path"].items() if p.startswith("/api/v2.25/song/")}


def metadata_tracks(engine) -> set[int]:
    """Tracks that appear on the chart whose schedule fetches metadata."""
    with engine.connect() as conn:
        return set(conn.execute(select(chart_ranking_entry.c.track_id).join(
            chart_ranking, chart_ranking.c.id == chart_ranking_entry.c.ranking_id)
            .where(chart_ranking.c.chart_id == WITH_METADATA[0])).scalars())


def test_new_tracks_are_fetched_in_batches_and_credited_to_the_sync(engine, client, emulator_admin):
    findings, result = sync(engine, client, WITH_METADATA)
    other, _ = sync(engine, client, WITHOUT_METADATA)
    emulator_admin.reset()
    run = refresh_metadata(engine, client, findings + other, batch_size=30)
    wanted = metadata_tracks(engine)
    assert (run.tracks, run.batches, run.created, run.updated) == (100, 4, 100, 0)
    assert run.api_requests == 100 and sum(song_requests(emulator_admin).values()) == 100  # one per song
    with engine.connect() as conn:
        fetched = set(conn.execute(select(track.c.id).where(track.c.metadata_fetched_at.is_not(None))).scalars())
        sample = conn.execute(select(track).where(track.c.id == min(wanted))).one()
        execution = conn.execute(select(chart_sync_execution).where(
            chart_sync_execution.c.id == result.execution_id)).one()
    assert fetched == wanted, "only tracks of charts whose schedule fetches metadata"
    assert sample.isrc and sample.artists and sample.release_date and sample.genres and sample.language_code
    assert (execution.metadata_created, execution.metadata_updated) == (100, 0)
    assert run.credited == {result.execution_id: [100, 0]}

    emulator_admin.reset()
    again = refresh_metadata(engine, client, findings)
    assert (again.tracks, again.api_requests) == (0, 0) and song_requests(emulator_admin) == {}


def test_stale_tracks_are_refetched_fresh_ones_are_not(engine, client, emulator_admin):
    findings, result = sync(engine, client, WITH_METADATA)
    refresh_metadata(engine, client, findings)
    ids = sorted(metadata_tracks(engine))
    stale, changed = ids[:5], ids[:2]
    old = datetime.now(UTC) - timedelta(days=31)
    with engine.begin() as conn:
        conn.execute(update(track).where(track.c.id.in_(stale)).values(metadata_fetched_at=old))
        conn.execute(update(track).where(track.c.id.in_(changed)).values(isrc="WRONG", explicit=None))
        conn.execute(update(track).where(track.c.id == ids[5]).values(  # 29 days: still fresh
            metadata_fetched_at=datetime.now(UTC) - timedelta(days=29)))
        uuids = dict(conn.execute(select(track.c.id, track.c.song_uuid)).all())
    assert [t.id for t in due_tracks(engine, [], datetime.now(UTC))] == stale
    emulator_admin.reset()
    # a later sync of the same ranking finds the stale tracks: the refetch is credited to it
    run = refresh_metadata(engine, client, [SyncFinding(result.execution_id, WITH_METADATA[0])])
    assert set(song_requests(emulator_admin)) == {f"/api/v2.25/song/{uuids[i]}" for i in stale}
    assert (run.created, run.updated, run.unchanged) == (0, 2, 3)
    with engine.connect() as conn:
        repaired = conn.execute(select(track.c.isrc).where(track.c.id.in_(changed))).scalars().all()
        execution = conn.execute(select(chart_sync_execution).where(
            chart_sync_execution.c.id == result.execution_id)).one()
        refetched_at = conn.execute(select(func.min(track.c.metadata_fetched_at))
                                    .where(track.c.id.in_(stale))).scalar()
    assert "WRONG" not in repaired
    assert (execution.metadata_created, execution.metadata_updated) == (100, 2)
    assert refetched_at.replace(tzinfo=UTC) > datetime.now(UTC) - timedelta(minutes=5)


def test_malformed_song_fails_the_batch_and_writes_nothing_of_it(engine, client, emulator_admin):
    findings, result = sync(engine, client, WITH_METADATA)
    due = due_tracks(engine, findings, datetime.now(UTC))
    emulator_admin.fault(kind="malformed", path_contains=due[45].song_uuid)  # in the second batch of 40
    with pytest.raises(SoundchartsMalformedResponse):
        refresh_metadata(engine, client, findings, batch_size=40)
    with engine.connect() as conn:
        fetched = set(conn.execute(select(track.c.id).where(track.c.metadata_fetched_at.is_not(None))).scalars())
        counts = conn.execute(select(chart_sync_execution.c.metadata_created, chart_sync_execution.c.metadata_updated)
                              .where(chart_sync_execution.c.id == result.execution_id)).one()
    assert fetched == {d.id for d in due[:40]}, "the first batch is kept, nothing of the failed one"
    assert tuple(counts) == (40, 0)
    emulator_admin.reset()
    resumed = refresh_metadata(engine, client, findings, batch_size=40)  # what a retry does
    assert (resumed.tracks, resumed.created) == (60, 60)


def test_unknown_song_is_not_asked_again_for_a_month(engine, client, emulator_admin):
    findings, _ = sync(engine, client, WITH_METADATA)
    with engine.begin() as conn:
        ghost = conn.execute(select(track.c.id).order_by(track.c.id)).scalars().first()
        conn.execute(update(track).where(track.c.id == ghost).values(song_uuid="00000000-dead-beef-0000-000000000000"))
    run = refresh_metadata(engine, client, findings)
    assert (run.missing, run.created) == (1, 99)
    assert all(t.id != ghost for t in due_tracks(engine, [], datetime.now(UTC)))
