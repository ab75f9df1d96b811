"""Fault soak: a catchup of many charts on a real Airflow while the API misbehaves, then a count of
what was lost, doubled, cut short or hidden.

Starts PostgreSQL (Airflow's metadata DB and the chart DB), the Soundcharts emulator and Airflow's
scheduler, dag-processor, triggerer and api-server (LocalExecutor, sized as ``make run`` sizes it),
schedules N charts (daily and weekly, alternating) with a history of P periods each, and arms seeded
fault rules on the ranking requests: ``--fault-rate`` of them answer 429, 500 or hang past the
client's read timeout (a third each), ``--malformed-rate`` answer a malformed 200. Then it waits for
every catchup run to end and counts:

- periods the API published in each window against periods stored;
- duplicate (chart, period) rankings, and partial rankings (``entry_count`` against entry rows);
- run by run, Airflow's final state and tries (REST API) against ``chart_sync_execution``;
- alerts raised (``chart_sync_alert``) and faults injected (the emulator's admin counters).

It prints a table and exits 1 when a target is missed: every published period stored, 0 duplicates,
0 partial, Airflow and chart-sync agreeing on every run (and one failure alert per failed run).

    .venv/bin/python benchmarks/soak.py [--charts 8] [--periods 30] [--fault-rate 0.1]
                                        [--malformed-rate 0.01] [--seed 7]

Knobs the product already reads: CHARTSYNC_RETRY_DELAY_SECONDS (the soak sets 5 unless given: the
first retry wait, doubling), CHARTSYNC_PARALLELISM (task slots; default one per core, at least 2).
``tests/integration/test_soak.py`` runs a small soak through ``run_soak``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "include"), str(ROOT / "tests")]

from soundcharts_emulator.server import start_server  # noqa: E402
from stacks import make_airflow_env, session_postgres  # noqa: E402
from stacks.soak import DAILY, WEEKLY, Load, run_soak, table  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    defaults = Load()
    parser.add_argument("--charts", type=int, default=defaults.charts,
                        help=f"charts, daily and weekly in turn (default {defaults.charts}, "
                             f"at most {len(DAILY) + len(WEEKLY)})")
    parser.add_argument("--periods", type=int, default=defaults.periods,
                        help=f"catchup periods per chart (default {defaults.periods})")
    parser.add_argument("--fault-rate", type=float, default=defaults.fault_rate,
                        help=f"share of ranking requests answering 429, 500 or hanging (default {defaults.fault_rate})")
    parser.add_argument("--malformed-rate", type=float, default=defaults.malformed_rate,
                        help=f"share of ranking requests answering a malformed body (default {defaults.malformed_rate})")
    parser.add_argument("--seed", type=int, default=defaults.seed, help=f"seed of the fault draws (default {defaults.seed})")
    parser.add_argument("--timeout", type=float, default=defaults.timeout / 60,
                        help=f"minutes to wait for the catchup (default {defaults.timeout / 60:g})")
    args = parser.parse_args(argv)
    if not 0 < args.periods or not 0 < args.charts or not 0 <= args.fault_rate + args.malformed_rate < 1:
        parser.error("--charts and --periods must be positive, the rates between 0 and 1")
    load = Load(args.charts, args.periods, args.fault_rate, args.malformed_rate, args.seed,
                timeout=args.timeout * 60)
    try:
        load.slugs()
    except ValueError as exc:
        parser.error(str(exc))

    base = Path(tempfile.mkdtemp(prefix="chartsync-soak-"))
    emulator = start_server(host="127.0.0.1", port=0)
    try:
        print("soak: PostgreSQL, the chart DB and an Airflow home (its metadata DB migrated)")
        postgres = session_postgres()
        chart_db = postgres.create_database("soak_chart")
        af = make_airflow_env(base, emulator.url, postgres.conn_json(chart_db), postgres.url(chart_db))
        report = run_soak(load, af, emulator.url)
    finally:
        emulator.shutdown()
    print()
    print(table(report))
    misses = report.misses()
    for miss in misses:
        print(f"MISSED: {miss}")
    if misses:
        print(f"Airflow's logs are kept in {base / 'airflow' / 'logs'}")
    else:
        shutil.rmtree(base, ignore_errors=True)
    return 1 if misses else 0


if __name__ == "__main__":
    sys.exit(main())
