"""``chartsync``: the command line for the chart warehouse (charts, schedules, syncs, gaps, audience).

A front door: it parses arguments, calls one command (one service call each) and translates what
comes back, once, into output and an exit code. Exit codes: 0 done, 1 the operation failed (API, DB or
Airflow; an unreachable database is one line naming it), 2 bad input (nothing written). Changes are
audited as ``cli:<user>``.

The commands live in two modules, imported only once the arguments parse: ``chart_db`` (the chart DB
only: no Airflow import, a fraction of a second) and ``commands`` (everything that reaches Airflow, whose
import alone takes over a second). Read commands take ``-o table|json|yaml|plain`` as Airflow's list
commands do (``chartsync.cli.output``).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from datetime import date

from chartsync.cli.errors import EXIT_BAD_INPUT, EXIT_FAILED
from chartsync.cli.output import FORMATS
from chartsync.core.calendar import Frequency
from chartsync.core.gaps import REPROCESS
from chartsync.settings import AUDIENCE_MAX_AGE, CHART_DB_CONN_ID, QUALITY_FLAGS, SOUNDCHARTS_CONN_ID

# the commands that need the chart DB only (chartsync.cli.chart_db): the others import Airflow
CHART_DB_ONLY = {"db_upgrade", "db_downgrade", "schedules_list", "quality", "quota"}


def _whole_number(value: str) -> int | str:
    """An int when the text is one; else the text itself, so the schedule validator names the problem."""
    try:
        return int(value)
    except ValueError:
        return value


def _number(value: str) -> float | str:
    try:
        return float(value)
    except ValueError:
        return value


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date (YYYY-MM-DD)") from None


def _positive_days(value: str) -> float:
    try:
        days = float(value)
    except ValueError:
        days = float("nan")
    if not 0 < days <= 3650:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of days between 0 and 3650")
    return days


def _output(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", choices=FORMATS, default="table", metavar="{" + ",".join(FORMATS) + "}",
                        help="output format, as airflow's list commands: table (default), json and yaml (a list "
                        "of objects with fixed keys, ISO dates), plain (tab-free columns for cut/awk)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chartsync",
        description="Manage the chart-sync warehouse: charts, sync schedules (one Airflow DAG each), syncs, gaps, "
        "data quality, audience, the execution log and the database.",
        epilog=f"Connections: {CHART_DB_CONN_ID} (sqlite or postgres) and {SOUNDCHARTS_CONN_ID} (http), looked up "
        f"like Airflow does (secrets backend, AIRFLOW_CONN_<ID> or the metadata DB); AIRFLOW_CONN_"
        f"{CHART_DB_CONN_ID.upper()} (URI or JSON) is read without loading Airflow. Exit codes: 0 done, 1 failed "
        "(API, database or Airflow; an unreachable database is named on one line), 2 bad input.",
    )
    # no metavar: argparse lists every group added below, so the usage line cannot leave one out
    groups = parser.add_subparsers(dest="group", required=True, title="command groups")

    db = groups.add_parser("db", help="chart DB schema").add_subparsers(dest="command", required=True)
    db.add_parser("upgrade", help=f"apply the Alembic migrations to the DB behind {CHART_DB_CONN_ID}").set_defaults(
        run="db_upgrade")
    down = db.add_parser("downgrade", help="undo the migrations after REVISION: an upgrade's rollback",
                         description="Undo the chart DB's migrations after REVISION (each migration file names "
                         "its revision: 0001, 0002, ...; 'base' drops every chart-sync table). A table a "
                         "migration added goes with its data: back up first (docs/operating/upgrades.md).")
    down.add_argument("revision", help="the revision to return to, e.g. 0005, or base")
    down.set_defaults(run="db_downgrade")

    charts = groups.add_parser("charts", help="the chart catalogue").add_subparsers(dest="command", required=True)
    imp = charts.add_parser("import", help="import (or refresh) the song charts of platforms from Soundcharts")
    imp.add_argument("--platform", action="append", required=True,
                     help="spotify, apple-music, shazam, deezer, ... (repeatable)")
    imp.add_argument("--country", help="only charts of this country code")
    imp.set_defaults(run="charts_import")

    sched = groups.add_parser("schedules", help="sync schedules (one DAG each)").add_subparsers(
        dest="command", required=True)
    add = sched.add_parser("add", help="schedule a chart for syncing",
                           description="Schedule a chart. Without --frequency it is detected from the chart "
                           "(else weekly). History: one year back, synced by Airflow's catchup.")
    add.add_argument("slug", help="chart slug (see chartsync charts import)")
    add.add_argument("--frequency", metavar="{" + ",".join(f.value for f in Frequency) + "}",
                     help="sync frequency (default: the chart's own, else weekly)")
    add.add_argument("--interval-hours", type=_whole_number, help="hours between runs (with --frequency custom)")
    add.add_argument("--cron", help="cron expression (with --frequency cron)")
    add.add_argument("--no-history", action="store_true", help="do not sync the past year (catchup off)")
    add.add_argument("--scheduled", action="store_true",
                     help="first run at the next period boundary instead of syncing the newest period now")
    add.add_argument("--no-metadata", action="store_true", help="do not fetch track metadata for this chart")
    add.add_argument("--inactive", action="store_true", help="create it paused")
    add.add_argument("--deadline-hours", type=_number,
                     help="hours after a period ends by which it must be synced (default: by frequency)")
    add.set_defaults(run="schedules_add")
    lst = sched.add_parser("list", help="list the sync schedules (reads the chart DB only)")
    _output(lst)
    lst.set_defaults(run="schedules_list")
    rm = sched.add_parser("remove", help="remove a chart's sync schedule: its DAG is paused now and disappears at "
                          "the next parse; its runs and synced rankings are kept")
    rm.add_argument("slug")
    rm.set_defaults(run="schedules_remove")
    for verb, what in (("activate", "unpause the chart's DAG and sync on schedule"),
                       ("deactivate", "pause the chart's DAG (keeps the schedule and its data)")):
        toggle = sched.add_parser(verb, help=what)
        toggle.add_argument("slug")
        toggle.set_defaults(run="schedules_activate")

    run = groups.add_parser("sync", help="sync one period of a chart now, outside Airflow",
                            description="The same service the chart DAG's sync_ranking task calls: fetch the "
                            "period, store it in one transaction with an execution row. Exit 1 when the "
                            "period is not published yet.")
    run.add_argument("slug")
    run.add_argument("--period", type=_day, help="period start date YYYY-MM-DD (default: the newest published)")
    run.set_defaults(run="sync")
    gaps = groups.add_parser("gaps", help="missing periods and healing").add_subparsers(
        dest="command", required=True)
    audit = gaps.add_parser("audit", help="refresh the expected periods from the API (gaps and coverage are "
                            "computed when shown)")
    audit.add_argument("slug", nargs="?", help="only this chart (default: every active schedule)")
    audit.set_defaults(run="gaps_audit")
    lst = gaps.add_parser("list", help="gap ranges behind each DAG's catchup front (asked of Airflow), each with "
                          "the airflow backfill command that closes it or the heal under way, and what waits for "
                          "each chart's catchup (state catchup)")
    lst.add_argument("slug", nargs="?", help="only this chart (default: every active schedule)")
    _output(lst)
    lst.set_defaults(run="gaps_list")
    heal = gaps.add_parser("heal", help="backfill exactly the missing periods: the first gap range now, the others "
                           "queued behind it",
                           description=f"Per chart, an Airflow backfill of its first gap range now (reprocess "
                           f"behaviour '{REPROCESS}': a successful run is never turned into a backfill run; one "
                           "whose rankings are gone is cleared to run again); the other ranges are queued and start "
                           "when the backfill before completes. Only gaps behind the DAG's catchup front: what the "
                           "catchup creates in turn is left to it, and said. A chart with a running backfill "
                           "reports already-running, one Airflow refuses reports refused; the others go on.")
    heal.add_argument("slug", nargs="?")
    heal.add_argument("--all", action="store_true", help="every chart with gaps")
    heal.set_defaults(run="gaps_heal")

    settings = groups.add_parser("settings", help="Airflow settings").add_subparsers(dest="command", required=True)
    load = settings.add_parser("load", help="load airflow_settings.yaml (connections, pools, variables) into "
                               f"Airflow; SOUNDCHARTS_APP_ID + SOUNDCHARTS_API_KEY point {SOUNDCHARTS_CONN_ID} "
                               "at the real API")
    load.add_argument("file", nargs="?", default="airflow_settings.yaml")
    load.set_defaults(run="settings_load")

    quality = groups.add_parser("quality", help="a chart's data quality: rankings checked and flagged, per flag",
                                description="The soft checks of a scheduled chart's stored rankings (the schedule "
                                "page's summary): rankings checked and flagged, how many carry each flag, and the "
                                "flagged rankings, newest first, each flag with the measure that raised it. "
                                "json, yaml and plain list the flagged rankings only.")
    quality.add_argument("slug", help="a scheduled chart's slug")
    quality.add_argument("--flag", choices=QUALITY_FLAGS, help="only the rankings with this flag")
    quality.add_argument("--limit", type=int, default=10, help="flagged rankings to list (default 10)")
    _output(quality)
    quality.set_defaults(run="quality")

    quota = groups.add_parser("quota", help="the Soundcharts API quota: left, spent, burn rate, run-out date, "
                              "the charts that spent most (reads the chart DB only)",
                              description="What the API last said is left (x-quota-remaining) and when, the calls "
                              "chart-sync spent today and in the last 30 days, the burn rate, the day the quota "
                              "runs out at that rate, the state against the reserve (CHARTSYNC_QUOTA_RESERVE) and "
                              "the charts that spent most. json and yaml: one object, the REST API's "
                              "GET /chart-sync/api/quota/ body.")
    quota.add_argument("--refresh", action="store_true", help="first read the quota from the Soundcharts usage "
                       "endpoint (it spends none; needs the soundcharts_default connection)")
    _output(quota)
    quota.set_defaults(run="quota")

    ex = groups.add_parser("executions", help="the execution log").add_subparsers(dest="command", required=True)
    rec = ex.add_parser("reconcile", help="record every try of a chart DAG that Airflow failed and chart-sync has "
                        "not seen (killed, marked failed by hand, or failed while the chart DB was down), and "
                        "raise each final failure's alert once (the scheduler does this every "
                        "CHARTSYNC_RECONCILE_SECONDS, 60 by default)")
    rec.add_argument("--days", type=_positive_days, default=3, help="how far back to look in Airflow (default 3)")
    rec.set_defaults(run="executions_reconcile")

    aud = groups.add_parser("audience", help="a song's audience per platform").add_subparsers(
        dest="command", required=True)
    refresh = aud.add_parser("refresh", help="trigger one chart_sync_audience run when the data is missing or "
                             f"older than {AUDIENCE_MAX_AGE.days} days (no second run while one is queued or "
                             "running)")
    refresh.add_argument("song_uuid")
    refresh.add_argument("--force", action="store_true", help="refresh even when the data is fresh")
    refresh.set_defaults(run="audience_refresh")
    show = aud.add_parser("show", help="the stored audience per platform, its age and whether a refresh runs "
                          "(asked of Airflow)")
    show.add_argument("song_uuid")
    show.add_argument("--svg", metavar="FILE", help="also write the plot the song page shows")
    _output(show)
    show.set_defaults(run="audience_show")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.run == "quota" and args.refresh:  # the usage endpoint needs the Soundcharts connection (Airflow's)
        args.run = "quota_refresh"
    # deferred: start-up cost: --help and usage errors answer at once, the chart DB's commands load no Airflow
    if args.run in CHART_DB_ONLY:
        from chartsync.cli import chart_db as module
    else:
        from chartsync.cli import commands as module
    from sqlalchemy.exc import OperationalError

    from chartsync.store.engine import unreachable

    try:
        return getattr(module, f"cmd_{args.run}")(args)
    except module.BAD_INPUT as exc:  # translated once, at the edge
        print(f"chartsync: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except module.FAILED as exc:
        print(f"chartsync: failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except OperationalError as exc:  # a database down, refusing or missing: one line, no traceback
        where = unreachable(exc) or "Airflow's metadata DB"
        reason = (str(exc.orig or exc).strip() or type(exc).__name__).splitlines()[0]
        print(f"chartsync: failed: {where}: {reason}", file=sys.stderr)
        return EXIT_FAILED
    except BrokenPipeError:  # `chartsync ... -o json | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes
        return 0
