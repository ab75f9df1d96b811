"""``chartsync``: the command line for the chart warehouse (charts, schedules, syncs, gaps, audience).

A front door: it parses arguments, calls one service and translates what comes back (once, in
``main``) into output and an exit code. Exit codes: 0 done, 1 the operation failed (API, DB or
Airflow), 2 bad input (nothing written). Changes are audited as ``cli:<user>``.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path

from chartsync import settings
from chartsync.core.calendar import Frequency
from chartsync.core.outcomes import Failed, NotPublishedYet, RunRef, Skipped, Synced
from chartsync.core.schedule import ScheduleError, ScheduleNotFound
from chartsync.seam.airflow_settings import load as load_airflow_settings
from chartsync.seam.orchestration import BackfillAlreadyRunning, DagNotParsedYet, RunAlreadyExists
from chartsync.services import audience, charts, gaps, schedules, sync
from chartsync.soundcharts.client import SoundchartsClient
from chartsync.soundcharts.errors import SoundchartsError
from chartsync.store.engine import ChartDbConfigError, chart_engine
from chartsync.store.migrate import current_revision, upgrade

EXIT_FAILED, EXIT_BAD_INPUT = 1, 2
BAD_INPUT = (ScheduleError, ScheduleNotFound, charts.ChartNotFound, audience.TrackNotFound)
FAILED = (ChartDbConfigError, SoundchartsError, DagNotParsedYet, RunAlreadyExists, BackfillAlreadyRunning)


class BadInput(Exception):
    pass


def _actor() -> str:
    """Who the audit log names for a change made on the command line."""
    return f"cli:{getpass.getuser()}"


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    engine = chart_engine()
    upgrade(engine)
    print(f"chart DB at revision {current_revision(engine)} ({engine.url.render_as_string(hide_password=True)})")
    return 0


def cmd_charts_import(args: argparse.Namespace) -> int:
    for platform in args.platform:
        created, updated = charts.import_charts(chart_engine(), SoundchartsClient(), platform, args.country)
        print(f"{platform}: {created} charts created, {updated} updated")
    return 0


def cmd_schedules_add(args: argparse.Namespace) -> int:
    engine = chart_engine()
    chart_row = charts.get_chart(engine, slug=args.slug)
    change = schedules.create_schedule(
        engine, chart_row.id, actor=_actor(), sync_frequency=args.frequency,
        custom_interval_hours=args.interval_hours, cron_expression=args.cron, is_active=not args.inactive,
        sync_immediately=not args.scheduled, sync_historical_data=not args.no_history,
        fetch_track_metadata=not args.no_metadata, deadline_hours=args.deadline_hours,
    )
    row = schedules.get_schedule(engine, change.schedule_id)
    print(f"schedule {change.schedule_id}: {args.slug} {row.sync_frequency}, history from {row.history_start}, "
          f"{'active' if row.is_active else 'inactive'}; {change.message}")
    return 0


def cmd_schedules_list(args: argparse.Namespace) -> int:
    rows = schedules.load_rows(chart_engine())
    if not rows:
        print("no sync schedules (add one: chartsync schedules add SLUG)")
        return 0
    print(f"{'id':>4}  {'chart':<45} {'platform':<12} {'frequency':<10} {'active':<6} history_start")
    for r in rows:
        freq = r.sync_frequency + (f"/{r.custom_interval_hours}h" if r.custom_interval_hours else "")
        print(f"{r.id:>4}  {r.slug:<45} {r.platform:<12} {freq:<10} {'yes' if r.is_active else 'no':<6} "
              f"{r.history_start}")
    return 0


def cmd_schedules_remove(args: argparse.Namespace) -> int:
    engine = chart_engine()
    change = schedules.delete_schedule(engine, schedules.schedule_of_slug(engine, args.slug).id, actor=_actor())
    print(f"removed the sync schedule of {args.slug}; {change.message}")
    return 0


def cmd_schedules_activate(args: argparse.Namespace) -> int:
    engine = chart_engine()
    row = schedules.schedule_of_slug(engine, args.slug)
    change = schedules.set_active(engine, row.id, args.command == "activate", actor=_actor())
    print(f"{args.slug}: {change.message}" + ("" if change.changed else " (unchanged)"))
    return 0


def cmd_sync(args: argparse.Namespace) -> int:
    """Sync one period now, outside Airflow (the same service the chart DAG's task calls)."""
    engine = chart_engine()
    configs, invalid = schedules.active_configs(engine, args.slug)
    if invalid:
        raise BadInput(f"{args.slug}: {invalid[0][1]}")
    if not configs:
        raise BadInput(f"{args.slug} has no active sync schedule")
    config = configs[0]
    now = datetime.now(UTC)
    run = RunRef(config.chart_id, config.dag_id, f"cli__{getpass.getuser()}__{now:%Y%m%dT%H%M%S}")
    outcome = sync.sync_run(engine, SoundchartsClient(), config, run, args.period, run_type="manual", now=now)
    if isinstance(outcome, Synced):
        print(f"{config.slug}: {outcome.result.summary()}")
        return 0
    if isinstance(outcome, Skipped):
        print(outcome.message)
        return 0
    if isinstance(outcome, NotPublishedYet):
        print(f"chartsync: failed: {config.slug} period {outcome.period} is not published yet "
              f"(the chart DAG waits until {outcome.until:%Y-%m-%d %H:%M} UTC)", file=sys.stderr)
        return EXIT_FAILED
    assert isinstance(outcome, Failed)
    print(f"chartsync: failed: {outcome.message}", file=sys.stderr)
    return EXIT_FAILED


def cmd_gaps_audit(args: argparse.Namespace) -> int:
    engine = chart_engine()
    configs, invalid = schedules.active_configs(engine, args.slug)
    for slug, error in invalid:
        print(f"skipping {slug}: {error}", file=sys.stderr)
    if args.slug and not configs:
        raise BadInput(f"{args.slug} has no active sync schedule")
    client = SoundchartsClient()
    for i, sources in enumerate(gaps.refresh_expected_periods(engine, client, configs), 1):
        note = "" if sources.api is not None else " (API unavailable: calendar only)"
        print(f"[{i}/{len(configs)}] {sources.slug}: {len(sources.expected)} expected periods "
              f"{sources.window[0]}..{sources.window[1]}{note}", flush=True)
        if sources.calendar_only:
            print(f"    not published by the API: {', '.join(d.isoformat() for d in sources.calendar_only)}")
        if sources.api_only:
            print(f"    published off the calendar: {', '.join(d.isoformat() for d in sources.api_only)}")
    found = gaps.detect_gaps(engine)
    print(f"{len(found)} gap range(s) in {len({g.slug for g in found})} chart(s); "
          f"{client.request_count} API requests")
    return 0


def cmd_gaps_list(args: argparse.Namespace) -> int:
    found = gaps.list_gaps(chart_engine(), slug=args.slug)
    if not found:
        print("no gaps recorded (refresh with: chartsync gaps audit)")
        return 0
    for gap in found:
        span = f"{gap.start}" if gap.start == gap.end else f"{gap.start}..{gap.end}"
        print(f"{gap.slug}: {gap.periods} missing period(s) {span}\n    {gap.backfill_command}")
    return 0


def cmd_gaps_heal(args: argparse.Namespace) -> int:
    if not args.all and not args.slug:
        raise BadInput("name a chart SLUG or pass --all")
    results = gaps.heal(chart_engine(), None if args.all else [args.slug], actor=_actor())
    for r in results:
        print(f"{r.slug}: {r.status}: {r.message}")
    return 0 if all(r.status != "dag-not-parsed" for r in results) else EXIT_FAILED


def cmd_settings_load(args: argparse.Namespace) -> int:
    credentials = settings.soundcharts_credentials()
    overrides = {settings.SOUNDCHARTS_CONN_ID: credentials} if credentials else {}
    if not Path(args.file).is_file():
        raise BadInput(f"{args.file}: no such file")
    counts = load_airflow_settings(Path(args.file), overrides)
    print(f"loaded {json.dumps(counts)} from {args.file}"
          + (" (soundcharts_default -> the real API)" if overrides else ""))
    return 0


def cmd_audience_refresh(args: argparse.Namespace) -> int:
    request = audience.request_refresh(chart_engine(), args.song_uuid, _actor(), force=args.force)
    print(request.message)
    return 0


def cmd_audience_show(args: argparse.Namespace) -> int:
    view = audience.audience_view(chart_engine(), args.song_uuid)
    state = "stale" if view.is_stale else "fresh"
    print(f"{view.name}" + (f" by {view.credit_name}" if view.credit_name else "") + f" ({view.song_uuid})")
    print(f"fetched {view.fetched_at:%Y-%m-%d %H:%M} UTC, {state}" if view.fetched_at else "never fetched")
    if view.is_refreshing:
        print(f"refreshing: run {view.refresh_run_id}")
    for platform, points in view.series.items():
        latest = f"{points[-1][1]:>14,} on {points[-1][0]}" if points else f"{'no data':>14}"
        print(f"  {audience.PLATFORM_NAMES.get(platform, platform):<12} {latest}  ({len(points)} days)")
    if args.svg:
        Path(args.svg).write_text(audience.svg_plot(view))
        print(f"plot written to {args.svg}")
    return 0


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chartsync",
        description="Manage the chart-sync warehouse: charts, sync schedules (one Airflow DAG each), database.",
        epilog="Connections: chart_db (sqlite or postgres) and soundcharts_default (http), looked up like "
        "Airflow does (metadata DB, secrets backend or AIRFLOW_CONN_<ID>).",
    )
    groups = parser.add_subparsers(dest="group", required=True,
                                   metavar="{db,charts,schedules,sync,gaps,settings,audience}")

    db = groups.add_parser("db", help="chart DB schema").add_subparsers(dest="command", required=True)
    db.add_parser("upgrade", help="apply the Alembic migrations to the DB behind chart_db").set_defaults(
        func=cmd_db_upgrade)

    charts = groups.add_parser("charts", help="the chart catalogue").add_subparsers(dest="command", required=True)
    imp = charts.add_parser("import", help="import (or refresh) the song charts of platforms from Soundcharts")
    imp.add_argument("--platform", action="append", required=True,
                     help="spotify, apple-music, shazam, deezer, ... (repeatable)")
    imp.add_argument("--country", help="only charts of this country code")
    imp.set_defaults(func=cmd_charts_import)

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
    add.set_defaults(func=cmd_schedules_add)
    sched.add_parser("list", help="list sync schedules").set_defaults(func=cmd_schedules_list)
    rm = sched.add_parser("remove", help="remove a chart's sync schedule (keeps its data)")
    rm.add_argument("slug")
    rm.set_defaults(func=cmd_schedules_remove)
    for verb, what in (("activate", "unpause the chart's DAG and sync on schedule"),
                       ("deactivate", "pause the chart's DAG (keeps the schedule and its data)")):
        toggle = sched.add_parser(verb, help=what)
        toggle.add_argument("slug")
        toggle.set_defaults(func=cmd_schedules_activate)

    run = groups.add_parser("sync", help="sync one period of a chart now, outside Airflow",
                            description="The same service the chart DAG's sync_ranking task calls: fetch the "
                            "period, store it in one transaction with an execution row. Exit 1 when the "
                            "period is not published yet.")
    run.add_argument("slug")
    run.add_argument("--period", type=_day, help="period start date YYYY-MM-DD (default: the newest published)")
    run.set_defaults(func=cmd_sync)
    gaps = groups.add_parser("gaps", help="missing periods and healing").add_subparsers(
        dest="command", required=True)
    audit = gaps.add_parser("audit", help="refresh expected periods from the API and recompute gaps and coverage")
    audit.add_argument("slug", nargs="?", help="only this chart (default: every active schedule)")
    audit.set_defaults(func=cmd_gaps_audit)
    lst = gaps.add_parser("list", help="gap ranges with the airflow backfill command that closes each")
    lst.add_argument("slug", nargs="?")
    lst.set_defaults(func=cmd_gaps_list)
    heal = gaps.add_parser("heal", help="create the Airflow backfills that close the recorded gaps",
                           description="One backfill per chart DAG over its gap ranges (reprocess behaviour "
                           "'completed', so runs that succeeded but left no data are redone). A DAG with a "
                           "running backfill is skipped: healing twice creates no duplicates.")
    heal.add_argument("slug", nargs="?")
    heal.add_argument("--all", action="store_true", help="every chart with gaps")
    heal.set_defaults(func=cmd_gaps_heal)

    settings = groups.add_parser("settings", help="Airflow settings").add_subparsers(dest="command", required=True)
    load = settings.add_parser("load", help="load airflow_settings.yaml (connections, pools, variables) into "
                               "Airflow; SOUNDCHARTS_APP_ID + SOUNDCHARTS_API_KEY point soundcharts_default "
                               "at the real API")
    load.add_argument("file", nargs="?", default="airflow_settings.yaml")
    load.set_defaults(func=cmd_settings_load)

    aud = groups.add_parser("audience", help="a song's audience per platform").add_subparsers(
        dest="command", required=True)
    refresh = aud.add_parser("refresh", help="trigger one chart_sync_audience run when the data is missing or "
                             "older than 7 days (no second run while one is queued or running)")
    refresh.add_argument("song_uuid")
    refresh.add_argument("--force", action="store_true", help="refresh even when the data is fresh")
    refresh.set_defaults(func=cmd_audience_refresh)
    show = aud.add_parser("show", help="the stored audience, its age and whether a refresh runs")
    show.add_argument("song_uuid")
    show.add_argument("--svg", metavar="FILE", help="also write the plot the song page shows")
    show.set_defaults(func=cmd_audience_show)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (BadInput, *BAD_INPUT) as exc:  # translated once, at the edge
        print(f"chartsync: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except FAILED as exc:
        print(f"chartsync: failed: {exc}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
