"""Start-up of the ``chartsync`` CLI's reads: ``chartsync schedules list -o json`` on a chart DB of N schedules
against two baselines measured in the same run, ``python -c pass`` (the interpreter alone) and
``python -m chartsync.cli --help`` (the parser, nothing else).

The chart DB is PostgreSQL, as in ``make run`` (a private server from ``tests/stacks``), or a SQLite file
with ``--sqlite`` (whose check of Airflow's executor reads airflow.cfg, so it loads Airflow). Each command
runs as a whole process, in turn (A B C A B C ...) after one warm-up each; it prints the median, min and max
seconds of each and the median ratios, and how many ``airflow`` modules the read imported.

    .venv/bin/python benchmarks/cli.py [--schedules 50] [--runs 7] [--sqlite]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "include"), str(ROOT / "tests")]

from sqlalchemy import create_engine, insert  # noqa: E402

from chartsync.store.migrate import upgrade  # noqa: E402
from chartsync.store.tables import chart, chart_sync_schedule  # noqa: E402
from stacks.postgres import start_postgres  # noqa: E402


def seed(url: str, schedules: int) -> None:
    engine = create_engine(url)
    upgrade(engine)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(insert(chart), [{"id": c, "slug": f"bench-{c}", "name": f"Bench {c}", "platform": "spotify",
                                      "frequency": "daily", "created_at": now} for c in range(1, schedules + 1)])
        conn.execute(insert(chart_sync_schedule), [
            {"chart_id": c, "is_active": True, "sync_frequency": "daily", "history_start": date(2025, 12, 1),
             "created_at": now, "updated_at": now} for c in range(1, schedules + 1)])
    engine.dispose()


def seconds(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    took = time.perf_counter() - start
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(argv)}: exit {done.returncode}\n{done.stderr[-2000:]}")
    return took


def airflow_modules(argv: list[str], env: dict[str, str]) -> int:
    done = subprocess.run([argv[0], "-X", "importtime", *argv[1:]], env=env, capture_output=True, text=True,
                          check=True)
    return sum(1 for line in done.stderr.splitlines() if line.rsplit("|", 1)[-1].strip().startswith("airflow"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--schedules", type=int, default=50)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--sqlite", action="store_true", help="a SQLite chart DB instead of PostgreSQL")
    args = parser.parse_args()

    pg = None
    with tempfile.TemporaryDirectory(prefix="chartsync-bench-cli-") as tmp:
        if args.sqlite:
            url = conn = f"sqlite:///{Path(tmp) / 'chart.db'}"
        else:
            pg = start_postgres(private=True)
            name = pg.create_database("bench_cli")
            url, conn = pg.url(name), pg.conn_json(name)
        try:
            seed(url, args.schedules)
            env = {**os.environ, "AIRFLOW_CONN_CHART_DB": conn, "AIRFLOW_HOME": tmp,
                   "PYTHONPATH": os.pathsep.join([str(ROOT / "include"), str(ROOT / "plugins")])}
            commands = {
                "schedules list -o json": [sys.executable, "-m", "chartsync.cli", "schedules", "list", "-o", "json"],
                "python -c pass": [sys.executable, "-c", "pass"],
                "chartsync --help": [sys.executable, "-m", "chartsync.cli", "--help"],
            }
            times: dict[str, list[float]] = {label: [] for label in commands}
            for label, argv in commands.items():
                seconds(argv, env)  # warm-up: the page cache, .pyc files
            for _ in range(args.runs):
                for label, argv in commands.items():
                    times[label].append(seconds(argv, env))
            imported = airflow_modules(commands["schedules list -o json"], env)
        finally:
            if pg is not None:
                pg.stop()

    db = "SQLite" if args.sqlite else "PostgreSQL"
    print(f"chartsync CLI start-up: {args.schedules} schedules on {db}, {args.runs} runs each (wall seconds)")
    for label, values in times.items():
        print(f"  {label:<24} median {statistics.median(values):6.3f}  min {min(values):6.3f}  "
              f"max {max(values):6.3f}")
    read = statistics.median(times["schedules list -o json"])
    for label in ("python -c pass", "chartsync --help"):
        print(f"  schedules list / {label:<17} {read / statistics.median(times[label]):6.1f}x")
    print(f"  airflow modules the read imported: {imported}")


if __name__ == "__main__":
    main()
