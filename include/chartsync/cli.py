"""``chartsync``: the command line for the chart warehouse (charts, schedules, database).

Exit codes: 0 done, 1 the operation failed (API or DB), 2 bad input (nothing written).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from chartsync.core.calendar import Frequency

EXIT_FAILED, EXIT_BAD_INPUT = 1, 2


class BadInput(Exception):
    pass


def _actor() -> str:
    """Who the audit log names for a change made on the command line."""
    import getpass

    return f"cli:{getpass.getuser()}"


def _engine():
    from chartsync.store.engine import chart_engine

    return chart_engine()


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from chartsync.store.migrate import current_revision, upgrade

    engine = _engine()
    upgrade(engine)
    print(f"chart DB at revision {current_revision(engine)} ({engine.url.render_as_string(hide_password=True)})")
    return 0


def cmd_charts_import(args: argparse.Namespace) -> int:
    from chartsync.services.charts import import_charts
    from chartsync.soundcharts.client import SoundchartsClient

    total_created = total_updated = 0
    for platform in args.platform:
        created, updated = import_charts(_engine(), SoundchartsClient(), platform, args.country)
        print(f"{platform}: {created} charts created, {updated} updated")
        total_created += created
        total_updated += updated
    return 0


def cmd_schedules_add(args: argparse.Namespace) -> int:
    from chartsync.services import charts
    from chartsync.services import schedules
    from chartsync.services.charts import ChartNotFound
    from chartsync.soundcharts.client import SoundchartsClient

    engine = _engine()
    try:
        chart_row = charts.get_chart(engine, slug=args.slug)
    except ChartNotFound as exc:
        raise BadInput(str(exc)) from None
    if args.frequency == Frequency.CUSTOM.value and args.interval_hours is None:
        raise BadInput("--interval-hours is required with --frequency custom")
    if args.interval_hours is not None and args.frequency != Frequency.CUSTOM.value:
        raise BadInput("--interval-hours only goes with --frequency custom")
    weekday = chart_row.publication_weekday
    if weekday is None and (args.frequency or chart_row.frequency or "weekly").startswith("week"):
        weekday = charts.learn_publication_weekday(engine, SoundchartsClient(), chart_row)
    try:
        schedule_id = schedules.add_schedule(
            engine, chart_row, frequency=args.frequency, custom_interval_hours=args.interval_hours,
            cron_expression=args.cron, weekday=weekday, is_active=not args.inactive,
            sync_immediately=not args.scheduled, sync_historical_data=not args.no_history,
            fetch_track_metadata=not args.no_metadata, actor=_actor(),
        )
    except schedules.ScheduleError as exc:
        raise BadInput(str(exc)) from None
    row = schedules.load_rows(engine, args.slug)[0]
    print(f"schedule {schedule_id}: {args.slug} {row.sync_frequency}, history from {row.history_start}, "
          f"{'active' if row.is_active else 'inactive'}; DAG {schedules.dag_id_for(args.slug)} appears at the "
          "next parse of dags/chart_sync.py (within [dag_processor] refresh interval, 30 s by default)")
    return 0


def cmd_schedules_list(args: argparse.Namespace) -> int:
    from chartsync.services import schedules

    rows = schedules.load_rows(_engine())
    if not rows:
        print("no sync schedules (add one: chartsync schedules add SLUG)")
        return 0
    header = f"{'id':>4}  {'chart':<45} {'platform':<12} {'frequency':<10} {'active':<6} history_start"
    print(header)
    for r in rows:
        freq = r.sync_frequency + (f"/{r.custom_interval_hours}h" if r.custom_interval_hours else "")
        print(f"{r.id:>4}  {r.slug:<45} {r.platform:<12} {freq:<10} {'yes' if r.is_active else 'no':<6} "
              f"{r.history_start}")
    return 0


def cmd_schedules_remove(args: argparse.Namespace) -> int:
    from chartsync.services import charts
    from chartsync.services import schedules

    engine = _engine()
    try:
        chart_row = charts.get_chart(engine, slug=args.slug)
        schedules.remove_schedule(engine, chart_row.id, actor=_actor())
    except (charts.ChartNotFound, schedules.ScheduleNotFound) as exc:
        raise BadInput(str(exc)) from None
    print(f"removed the sync schedule of {args.slug}; its DAG disappears at the next parse "
          "(runs and the synced rankings are kept)")
    return 0


def _active_configs(engine, slug: str | None = None):
    from chartsync.services import schedules

    configs = []
    for row in schedules.load_rows(engine, slug):
        try:
            config = schedules.ScheduleConfig.from_row(row)
        except schedules.ScheduleError as exc:
            print(f"skipping {row.slug}: {exc}", file=sys.stderr)
            continue
        if config.is_active:
            configs.append(config)
    return configs


def cmd_gaps_audit(args: argparse.Namespace) -> int:
    from chartsync.services import gaps
    from chartsync.soundcharts.client import SoundchartsClient

    engine = _engine()
    configs = _active_configs(engine, args.slug)
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
    from chartsync.services import gaps

    found = gaps.list_gaps(_engine(), slug=args.slug)
    if not found:
        print("no gaps recorded (refresh with: chartsync gaps audit)")
        return 0
    for gap in found:
        span = f"{gap.start}" if gap.start == gap.end else f"{gap.start}..{gap.end}"
        print(f"{gap.slug}: {gap.periods} missing period(s) {span}\n    {gap.backfill_command}")
    return 0


def cmd_gaps_heal(args: argparse.Namespace) -> int:
    from chartsync.services import gaps

    if not args.all and not args.slug:
        raise BadInput("name a chart SLUG or pass --all")
    results = gaps.heal(_engine(), None if args.all else [args.slug], user=_actor())
    for r in results:
        print(f"{r.slug}: {r.status}: {r.message}")
    return 0 if all(r.status != "dag-not-parsed" for r in results) else EXIT_FAILED


def cmd_settings_load(args: argparse.Namespace) -> int:
    import json
    import os
    from pathlib import Path

    from chartsync.seam.airflow_settings import load

    overrides = {}
    if os.environ.get("SOUNDCHARTS_APP_ID") and os.environ.get("SOUNDCHARTS_API_KEY"):
        overrides["soundcharts_default"] = {
            "conn_type": "http", "host": os.environ.get("SOUNDCHARTS_URL", "https://customer.api.soundcharts.com"),
            "login": os.environ["SOUNDCHARTS_APP_ID"], "password": os.environ["SOUNDCHARTS_API_KEY"],
        }
    if not Path(args.file).is_file():
        raise BadInput(f"{args.file}: no such file")
    counts = load(Path(args.file), overrides)
    print(f"loaded {json.dumps(counts)} from {args.file}"
          + (" (soundcharts_default -> the real API)" if overrides else ""))
    return 0


def cmd_audience_refresh(args: argparse.Namespace) -> int:
    import getpass

    from chartsync.services import audience
    from chartsync.seam.orchestration import DagNotParsedYet

    try:
        request = audience.request_refresh(_engine(), args.song_uuid, f"cli:{getpass.getuser()}", force=args.force)
    except audience.TrackNotFound as exc:
        raise BadInput(str(exc)) from None
    except DagNotParsedYet as exc:
        print(f"chartsync: failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(request.message)
    return 0


def cmd_audience_show(args: argparse.Namespace) -> int:
    from pathlib import Path

    from chartsync.services import audience

    try:
        view = audience.audience_view(_engine(), args.song_uuid)
    except audience.TrackNotFound as exc:
        raise BadInput(str(exc)) from None
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


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if number <= 0:
        raise argparse.ArgumentTypeError("must be greater than 0")
    return number


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chartsync",
        description="Manage the chart-sync warehouse: charts, sync schedules (one Airflow DAG each), database.",
        epilog="Connections: chart_db (sqlite or postgres) and soundcharts_default (http), looked up like "
        "Airflow does (metadata DB, secrets backend or AIRFLOW_CONN_<ID>).",
    )
    groups = parser.add_subparsers(dest="group", required=True, metavar="{db,charts,schedules,gaps,settings,audience}")

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
    add.add_argument("--frequency", choices=[f.value for f in Frequency])
    add.add_argument("--interval-hours", type=_positive_int, help="hours between runs (with --frequency custom)")
    add.add_argument("--cron", help="cron expression (with --frequency cron)")
    add.add_argument("--no-history", action="store_true", help="do not sync the past year (catchup off)")
    add.add_argument("--scheduled", action="store_true",
                     help="first run at the next period boundary instead of syncing the newest period now")
    add.add_argument("--no-metadata", action="store_true", help="do not fetch track metadata for this chart")
    add.add_argument("--inactive", action="store_true", help="create it paused")
    add.set_defaults(func=cmd_schedules_add)
    sched.add_parser("list", help="list sync schedules").set_defaults(func=cmd_schedules_list)
    rm = sched.add_parser("remove", help="remove a chart's sync schedule (keeps its data)")
    rm.add_argument("slug")
    rm.set_defaults(func=cmd_schedules_remove)
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
    except BadInput as exc:
        print(f"chartsync: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as exc:  # translate once, at the edge
        from chartsync.store.engine import ChartDbConfigError
        from chartsync.soundcharts.client import SoundchartsError

        if isinstance(exc, (ChartDbConfigError, SoundchartsError)):
            print(f"chartsync: failed: {exc}", file=sys.stderr)
            return EXIT_FAILED
        raise


if __name__ == "__main__":
    sys.exit(main())
