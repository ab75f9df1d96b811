"""On the real scheduler: a sync that finds new tracks emits the rankings asset, whose event triggers
chart_sync_track_metadata; it fetches their metadata and credits the sync. A later sync gets its new
tracks and the stale (> 30 days) ones refetched, and nothing fresh."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
import requests
from sqlalchemy import select, update

from chartsync.store.tables import chart_sync_execution, track
from stacks import start_airflow, stop_airflow, wait_for

pytestmark = pytest.mark.integration

SLUG = "deezer-top-100-fr-daily"
SYNC_DAG = f"chart_sync__{SLUG}"
METADATA_DAG = "chart_sync_track_metadata"
HEADERS = {"x-app-id": "soundcharts", "x-api-key": "soundcharts"}


def api(services, token, method, path, **kwargs):
    r = requests.request(method, f"{services.api_url}/api/v2{path}", headers={"Authorization": f"Bearer {token}"},
                         timeout=10, **kwargs)
    return r


def runs(services, token, dag_id) -> list[dict]:
    r = api(services, token, "GET", f"/dags/{dag_id}/dagRuns", params={"limit": 100})
    if r.status_code == 404:
        return []
    r.raise_for_status()
    return r.json()["dag_runs"]


def succeeded(services, token, dag_id, count):
    def check():
        found = runs(services, token, dag_id)
        assert not [r for r in found if r["state"] == "failed"], f"{dag_id} failed: {found}"
        done = [r for r in found if r["state"] == "success"]
        return len(done) >= count and done
    return check


def ranking_uuids(emulator, day: date) -> set[str]:
    r = requests.get(f"{emulator.url}/api/v2.14/chart/song/{SLUG}/ranking/{day}T00:00:00%2B00:00",
                     params={"limit": 100}, headers=HEADERS, timeout=10)
    r.raise_for_status()
    return {item["song"]["uuid"] for item in r.json()["items"]}


def song_paths(emulator_admin) -> set[str]:
    return {p for p in emulator_admin.requests()["by_path"] if p.startswith("/api/v2.25/song/")}


def test_new_and_stale_tracks_get_metadata_after_a_sync(airflow_sqlite, emulator, emulator_admin):
    af = airflow_sqlite
    af.chartsync("charts", "import", "--platform", "deezer")
    engine = af.engine()
    services = start_airflow(af)
    try:
        token = services.token()
        wait_for(lambda: api(services, token, "GET", f"/dags/{METADATA_DAG}").status_code == 200, 120,
                 "the track metadata DAG to be parsed")
        # sync_immediately, no history: the newest period syncs as soon as the DAG appears
        af.chartsync("schedules", "add", SLUG, "--frequency", "daily", "--no-history")
        first_sync = wait_for(succeeded(services, token, SYNC_DAG, 1), 120, "the first sync", interval=1)[0]
        first_meta = wait_for(succeeded(services, token, METADATA_DAG, 1), 120, "the metadata run", interval=1)
        assert [r["run_type"] for r in first_meta] == ["asset_triggered"]
        with engine.connect() as conn:
            execution = conn.execute(select(chart_sync_execution).where(
                chart_sync_execution.c.run_id == first_sync["dag_run_id"])).one()
            missing = conn.execute(select(track.c.id).where(track.c.metadata_fetched_at.is_(None))).all()
            uuids = dict(conn.execute(select(track.c.song_uuid, track.c.id)).all())
        assert execution.tracks_created == len(uuids) == 100
        assert (execution.metadata_created, execution.metadata_updated) == (100, 0)
        assert missing == []

        # age five tracks of the day before's ranking past 30 days, damage two; then sync that day
        day_before = date.fromisoformat(first_sync["data_interval_start"][:10]) - timedelta(days=1)
        shared = sorted(uuids[u] for u in ranking_uuids(emulator, day_before) if u in uuids)
        stale, damaged = shared[:5], shared[:2]
        with engine.begin() as conn:
            conn.execute(update(track).where(track.c.id.in_(stale))
                         .values(metadata_fetched_at=datetime.now(UTC) - timedelta(days=31)))
            conn.execute(update(track).where(track.c.id.in_(damaged)).values(isrc="DAMAGED"))
        emulator_admin.reset()
        r = api(services, token, "POST", f"/dags/{SYNC_DAG}/dagRuns",
                json={"logical_date": f"{day_before}T00:00:00Z"})
        assert r.status_code == 200, r.text
        second_sync = r.json()["dag_run_id"]
        wait_for(succeeded(services, token, SYNC_DAG, 2), 120, "the second sync", interval=1)
        wait_for(succeeded(services, token, METADATA_DAG, 2), 120, "the second metadata run", interval=1)
    finally:
        stop_airflow(services)

    with engine.connect() as conn:
        execution = conn.execute(select(chart_sync_execution).where(
            chart_sync_execution.c.run_id == second_sync)).one()
        new_uuids = set(conn.execute(select(track.c.song_uuid)).scalars()) - set(uuids)
        isrcs = conn.execute(select(track.c.isrc).where(track.c.id.in_(damaged))).scalars().all()
    by_id = {v: k for k, v in uuids.items()}
    assert len(new_uuids) == execution.tracks_created > 0
    assert song_paths(emulator_admin) == {f"/api/v2.25/song/{u}" for u in new_uuids | {by_id[i] for i in stale}}
    assert (execution.metadata_created, execution.metadata_updated) == (execution.tracks_created, 2)
    assert "DAMAGED" not in isrcs
