"""Soundcharts API requests per unit of work, counted twice: by the client (``request_count``) and
by the emulator (``GET /__admin/requests``, by path).

Runs the chart-sync service functions the DAG tasks call (no scheduler: Airflow adds no API
request) against an in-process emulator and a SQLite chart DB:

1. a sync of one period of a 200-entry chart, then the same period again;
2. the track metadata run for the tracks it found, per batch; then the next day's sync and its
   metadata run (only that day's new tracks); then a metadata run right after (nothing is due);
3. a song's audience refresh, and whether the page would refresh it again.

Prints the figures and checks that no song is ever requested twice.

    .venv/bin/python benchmarks/api_requests.py [--slug spotify-top-200-global-daily] [--batch-size 50]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="chartsync-bench-"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "include"))

import requests  # noqa: E402
from sqlalchemy import create_engine, insert, select  # noqa: E402

from chartsync.services import audience  # noqa: E402
from chartsync.store.migrate import upgrade  # noqa: E402
from chartsync.store.tables import chart, chart_sync_schedule, track  # noqa: E402
from chartsync.core.outcomes import RunRef, findings_from_extras, rankings_event_extra  # noqa: E402
from chartsync.soundcharts.client import SoundchartsClient  # noqa: E402
from chartsync.services.sync import sync_period  # noqa: E402
from chartsync.services.track_metadata import refresh_metadata  # noqa: E402
from soundcharts_emulator.server import start_server  # noqa: E402


class Counted:
    """Emulator request counts since the last ``take``, by endpoint kind."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.song_paths: Counter[str] = Counter()  # every song metadata request of the whole benchmark
        requests.post(f"{url}/__admin/reset", timeout=5).raise_for_status()

    def take(self) -> dict[str, int]:
        by_path = requests.get(f"{self.url}/__admin/requests", timeout=5).json()["by_path"]
        requests.post(f"{self.url}/__admin/reset", timeout=5).raise_for_status()
        kinds: Counter[str] = Counter()
        for path, n in by_path.items():
            kind = ("ranking" if "/ranking/" in path else "song" if path.startswith("/api/v2.25/song/")
                    else "audience" if "/audience/" in path else "other")
            kinds[kind] += n
            if kind == "song":
                self.song_paths[path] += n
        return dict(kinds)


def row(label: str, client_count: int, emulator: dict[str, int], note: str = "") -> None:
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(emulator.items())) or "none"
    print(f"  {label:<44} {client_count:>5}   emulator: {kinds}{'  ' + note if note else ''}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slug", default="spotify-top-200-global-daily")
    parser.add_argument("--batch-size", type=int, default=50)
    args = parser.parse_args()

    server = start_server(host="127.0.0.1", port=0)
    os.environ["AIRFLOW_CONN_SOUNDCHARTS_DEFAULT"] = json.dumps(
        {"conn_type": "http", "host": server.url, "login": "soundcharts", "password": "soundcharts"})
    workdir = Path(tempfile.mkdtemp(prefix="chartsync-requests-"))
    engine = create_engine(f"sqlite:///{workdir / 'chart.db'}")
    upgrade(engine)
    now = datetime.now(UTC)
    period = date.today() - timedelta(days=5)
    with engine.begin() as conn:
        conn.execute(insert(chart).values(id=1, slug=args.slug, name=args.slug, platform="spotify",
                                          frequency="daily", created_at=now))
        conn.execute(insert(chart_sync_schedule).values(chart_id=1, sync_frequency="daily",
                                                        fetch_track_metadata=True, history_start=period,
                                                        created_at=now, updated_at=now))
    counted = Counted(server.url)
    run = RunRef(1, f"chart_sync__{args.slug}", "manual__bench")
    print(f"API requests ({args.slug}, metadata batches of {args.batch_size}); client count, then the emulator's")

    sync_requests: list[int] = []

    def sync(day: date, label: str):
        client = SoundchartsClient()
        result = sync_period(engine, client, run, args.slug, day)
        row(label, client.request_count, counted.take(),
            f"({result.entries_written} entries written, {result.tracks_created} new tracks)")
        sync_requests.append(client.request_count)
        return findings_from_extras([rankings_event_extra(1, args.slug, [result])])

    def metadata(findings, label: str):
        client = SoundchartsClient()
        result = refresh_metadata(engine, client, findings, batch_size=args.batch_size)
        row(label, client.request_count, counted.take(),
            f"({result.tracks} tracks due, {result.batches} batches: {result.batch_requests or '-'})")
        return result

    findings = sync(period, f"sync {period} (200 entries)")
    sync(period, f"sync {period} again (nothing changes)")
    first = metadata(findings, "track metadata for the new tracks")
    findings = sync(period + timedelta(days=1), f"sync {period + timedelta(days=1)}")
    second = metadata(findings, "track metadata for that day's new tracks")
    third = metadata([], "track metadata right after (nothing due)")

    with engine.connect() as conn:
        song = conn.execute(select(track.c.song_uuid).order_by(track.c.id)).scalars().first()
    client = SoundchartsClient()
    refreshed = audience.refresh_song(engine, client, song)
    row("audience refresh of one song (5 platforms)", client.request_count, counted.take(),
        f"({sum(refreshed.points.values())} days stored)")
    with engine.connect() as conn:
        fetched = conn.execute(select(track.c.audience_fetched_at).where(track.c.song_uuid == song)).scalar()
    print(f"  {'audience page opened again (fresh: no run)':<44} {0:>5}   is_stale="
          f"{audience.is_stale(fetched, datetime.now(UTC))}")

    repeated = {p: n for p, n in counted.song_paths.items() if n > 1}
    per_batch = first.batch_requests + second.batch_requests
    print(f"\nper sync of a 200-entry chart: {sync_requests[0]} requests (pages of 100); per metadata batch: "
          f"{min(per_batch)}..{max(per_batch)} requests (one per track, batches of {args.batch_size})")
    print(f"songs requested: {len(counted.song_paths)} distinct, {sum(counted.song_paths.values())} requests, "
          f"{len(repeated)} requested more than once; metadata run right after: {third.api_requests} requests")
    server.shutdown()
    return 1 if repeated or third.api_requests else 0


if __name__ == "__main__":
    sys.exit(main())
