"""The ``chartsync`` commands that reach Airflow (through the services and the seam): each parses nothing,
calls one service and prints what came back. Importing this module imports Airflow (about 1.3 s);
``chartsync.cli.chart_db`` has the commands that need the chart DB only.

``chartsync.cli.main`` builds the parser and translates the exceptions named here (``BAD_INPUT``,
``FAILED``) into exit codes, once.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from chartsync import settings
from chartsync.cli import chart_db
from chartsync.cli.errors import EXIT_FAILED, BadInput
from chartsync.cli.output import print_as
from chartsync.core.outcomes import Failed, NotPublishedYet, RunRef, Skipped, Synced
from chartsync.seam.airflow_settings import load as load_airflow_settings
from chartsync.seam.orchestration import BackfillAlreadyRunning, DagNotParsedYet, RunAlreadyExists
from chartsync.services import audience, budget, charts, failures, gaps, quota, schedules, sync
from chartsync.soundcharts.client import SoundchartsClient
from chartsync.soundcharts.errors import SoundchartsError
from chartsync.store.engine import chart_engine

BAD_INPUT = chart_db.BAD_INPUT
FAILED = (*chart_db.FAILED, SoundchartsError, DagNotParsedYet, RunAlreadyExists, BackfillAlreadyRunning)


def _actor() -> str:
    """Who the audit log names for a change made on the command line."""
    return f"cli:{getpass.getuser()}"


def cmd_charts_import(args: argparse.Namespace) -> int:
    if not all(platform.strip() for platform in args.platform):
        raise BadInput("--platform: name a platform (spotify, apple-music, shazam, deezer, ...)")
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
    print(f"{args.slug}: scheduled {row.sync_frequency}, history from {row.history_start}, "
          f"{'active' if row.is_active else 'inactive'} (schedule {change.schedule_id}); {change.message}")
    if change.estimate is not None:
        print(f"{args.slug}: first sync and history: {budget.describe(change.estimate)}")
    return 0


def cmd_schedules_remove(args: argparse.Namespace) -> int:
    engine = chart_engine()
    change = schedules.delete_schedule(engine, schedules.schedule_of_slug(engine, args.slug).id, actor=_actor())
    print(f"{args.slug}: sync schedule removed; {change.message}")
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
    charts.get_chart(engine, slug=args.slug)  # an unknown chart: exit 2
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


def cmd_executions_reconcile(args: argparse.Namespace) -> int:
    result = failures.reconcile_from_airflow(chart_engine(), since=datetime.now(UTC) - timedelta(days=args.days))
    print(f"{result.checked} failed tries in Airflow in the last {args.days:g} days: {result.rows_written} "
          f"recorded now, {result.alerts_raised} failure alerts raised now")
    return 0


def cmd_gaps_audit(args: argparse.Namespace) -> int:
    engine = chart_engine()
    if args.slug:
        charts.get_chart(engine, slug=args.slug)  # an unknown chart: exit 2
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
    report = gaps.gap_report(engine, slug=args.slug) if args.slug else gaps.gap_report(engine)
    waiting = f"; {sum(w.periods for w in report.waiting)} period(s) wait for catchups" if report.waiting else ""
    print(f"{len(report.gaps)} gap range(s) in {len({g.slug for g in report.gaps})} chart(s) now{waiting}; "
          f"{client.request_count} API requests")
    return 0


def cmd_gaps_list(args: argparse.Namespace) -> int:
    report = gaps.gap_report(chart_engine(), slug=args.slug)  # unknown chart or no schedule: exit 2
    rows = [{"chart": g.slug, "first": g.start, "last": g.end, "periods": g.periods, "state": g.heal or "missing",
             "backfill_id": g.backfill_id,
             # a range a heal already covers needs no command (Airflow refuses a second backfill of the DAG)
             "command": None if g.heal else g.backfill_command} for g in report.gaps]
    rows += [{"chart": w.slug, "first": w.first, "last": w.last, "periods": w.periods, "state": "catchup",
              "backfill_id": None, "command": None} for w in report.waiting]
    print_as(rows, args.output, empty=f"{args.slug}: no gaps" if args.slug else "no gaps in any active schedule")
    if args.output == "table":
        for wait in report.waiting:
            print(f"{wait.slug}: {wait.message}")
    return 0


def cmd_gaps_heal(args: argparse.Namespace) -> int:
    if not args.all and not args.slug:
        raise BadInput("name a chart SLUG or pass --all")
    results = gaps.heal(chart_engine(), None if args.all else [args.slug], actor=_actor())
    for r in results:
        print(f"{r.slug}: {r.status}: {r.message}")
        for g in r.queued:
            print(f"    queued: {g.start}..{g.end} ({g.periods} period(s))")
        if r.estimate is not None:
            print(f"    {budget.describe(r.estimate)}")
    return 0 if all(r.status not in ("dag-not-parsed", "refused") for r in results) else EXIT_FAILED


def cmd_quota_refresh(args: argparse.Namespace) -> int:
    """``chartsync quota --refresh``: read the quota from the usage endpoint first (it spends none)."""
    engine = chart_engine()
    quota.refresh(engine, SoundchartsClient())
    chart_db.print_quota(budget.report(engine), args.output)
    return 0


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
    if args.output == "table":  # the song, its age and any refresh above the table
        print(f"{view.name}" + (f" by {view.credit_name}" if view.credit_name else "") + f" ({view.song_uuid})")
        print(f"fetched {view.fetched_at:%Y-%m-%d %H:%M} UTC, {'stale' if view.is_stale else 'fresh'}"
              if view.fetched_at else "never fetched")
        if view.is_refreshing:
            print(f"refreshing: run {view.refresh_run_id}")
    print_as(({"song_uuid": view.song_uuid, "platform": platform,
               "audience": points[-1][1] if points else None, "date": points[-1][0] if points else None,
               "days": len(points), "fetched_at": view.fetched_at, "stale": view.is_stale,
               "refreshing": view.is_refreshing} for platform, points in view.series.items()), args.output)
    if args.svg:
        Path(args.svg).write_text(audience.svg_plot(view))
        print(f"plot written to {args.svg}", file=sys.stderr if args.output != "table" else sys.stdout)
    return 0
