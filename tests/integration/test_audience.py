"""On the real scheduler: an audience refresh triggers ONE chart_sync_audience run for the song; requests
while it is queued or running (even simultaneous ones) share it; fresh data triggers nothing."""

from __future__ import annotations

import json

import subprocess
from datetime import UTC, datetime

import pytest
import requests
from sqlalchemy import func, insert, select

from chartsync.store.tables import track, track_audience
from stacks import BIN, start_airflow, stop_airflow, wait_for

pytestmark = pytest.mark.integration

AUDIENCE_DAG = "chart_sync_audience"


def audience_runs(services, token) -> list[dict]:
    r = requests.get(f"{services.api_url}/api/v2/dags/{AUDIENCE_DAG}/dagRuns", params={"limit": 100},
                     headers={"Authorization": f"Bearer {token}"}, timeout=10)
    if r.status_code == 404:
        return []
    r.raise_for_status()
    return r.json()["dag_runs"]


def charted_song(emulator) -> tuple[str, str]:
    r = requests.get(f"{emulator.url}/api/v2.14/chart/song/spotify-top-200-global-daily/ranking/latest",
                     params={"limit": 5}, headers={"x-app-id": "soundcharts", "x-api-key": "soundcharts"}, timeout=10)
    song = r.json()["items"][3]["song"]
    return song["uuid"], song["name"]


def test_refresh_triggers_one_run_per_song_and_stores_every_platform(airflow_sqlite, emulator, emulator_admin):
    af = airflow_sqlite
    uuid, name = charted_song(emulator)
    engine = af.engine()
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(insert(track).values(song_uuid=uuid, name=name, created_at=now, updated_at=now))
    assert "never fetched" in af.chartsync("audience", "show", uuid).stdout
    services = start_airflow(af)
    try:
        token = services.token()
        wait_for(lambda: requests.get(f"{services.api_url}/api/v2/dags/{AUDIENCE_DAG}", timeout=5,
                                      headers={"Authorization": f"Bearer {token}"}).status_code == 200,
                 120, "the audience DAG to be parsed")
        emulator_admin.reset()
        emulator_admin.fault(kind="slow", path_contains="/audience/", delay=8, count=5)  # the run takes >= 40 s: longer than the three CLI calls below
        # two requests at the same moment: one run, shared
        both = [subprocess.Popen([str(BIN / "chartsync"), "audience", "refresh", uuid], env=af.env, text=True,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
        outputs = [p.communicate(timeout=120) for p in both]
        assert [p.returncode for p in both] == [0, 0], outputs
        run_id = f"manual__audience__{uuid}__{datetime.now(UTC):%Y%m%d}"
        said = sorted("triggered" if f"triggered {AUDIENCE_DAG} run {run_id}" in out
                      else "shared" if f"already refreshing in {AUDIENCE_DAG} run {run_id}" in out else out
                      for out, _ in outputs)
        assert said == ["shared", "triggered"], outputs
        # and one more while it is queued or running
        third = af.chartsync("audience", "refresh", uuid).stdout
        assert f"already refreshing in {AUDIENCE_DAG} run {run_id}" in third
        shown = af.chartsync("audience", "show", uuid).stdout
        assert f"refreshing: run {run_id}" in shown

        def done():
            found = audience_runs(services, token)
            return found and all(r["state"] in ("success", "failed") for r in found) and found

        finished = wait_for(done, 120, "the audience run", interval=1)
        assert [(r["dag_run_id"], r["state"]) for r in finished] == [(run_id, "success")]
        assert [r["conf"] for r in finished] == [{"song_uuid": uuid}]

        fresh = af.chartsync("audience", "refresh", uuid).stdout
        assert "audience is fresh" in fresh
        assert len(audience_runs(services, token)) == 1
    finally:
        stop_airflow(services)

    audience_calls = {p: n for p, n in emulator_admin.requests()["by_path"].items() if "/audience/" in p}
    assert sorted(audience_calls) == sorted(f"/api/v2/song/{uuid}/audience/{p}"
                                            for p in ("spotify", "apple-music", "deezer", "shazam", "youtube"))
    assert set(audience_calls.values()) == {1}
    with engine.connect() as conn:
        platforms = dict(conn.execute(select(track_audience.c.platform, func.count())
                                      .group_by(track_audience.c.platform)).all())
    assert set(platforms) == {"spotify", "apple-music", "deezer", "shazam", "youtube"}
    svg_file = af.home / "plot.svg"
    shown = af.chartsync("audience", "show", uuid, "--svg", str(svg_file)).stdout
    assert "fresh" in shown and "spotify" in shown and "refreshing: run" not in shown
    rows = json.loads(af.chartsync("audience", "show", uuid, "-o", "json").stdout)
    assert {r["platform"] for r in rows} == set(platforms) and not any(r["stale"] or r["refreshing"] for r in rows)
    assert svg_file.read_text().count("<polyline") == 5
