"""The ``chartsync`` commands: each parses nothing, calls one service and prints what came back.

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
from chartsync.core.outcomes import Failed, NotPublishedYet, RunRef, Skipped, Synced
from chartsync.core.schedule import ScheduleError, ScheduleNotFound
from chartsync.seam.airflow_settings import load as load_airflow_settings
from chartsync.seam.orchestration import BackfillAlreadyRunning, DagNotParsedYet, RunAlreadyExists
from chartsync.core.paging import PageRequest
from chartsync.services import audience, charts, failures, gaps, quality, schedules, sync
from chartsync.soundcharts.client import SoundchartsClient
from chartsync.soundcharts.errors import SoundchartsError
from chartsync.store.engine import ChartDbConfigError, chart_engine
from chartsync.store.migrate import current_revision, upgrade

EXIT_FAILED = 1


class BadInput(Exception):
    pass


BAD_INPUT = (BadInput, ScheduleError, ScheduleNotFound, charts.ChartNotFound, audience.TrackNotFound)
FAILED = (ChartDbConfigError, SoundchartsError, DagNotParsedYet, RunAlreadyExists, BackfillAlreadyRunning)


def _actor() -> str:
    """Who the audit log names for a change made on the command line."""
    return f"cli:{getpass.getuser()}"


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    engine = chart_engine()
    upgrade(engine)
    print(f"chart DB at revision {current_revision(engine)} ({engine.url.render_as_string(hide_password=True)})")
    return 0


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
    if not report.gaps:
        print(f"{args.slug}: no gaps" if args.slug else "no gaps in any active schedule")
    for gap in report.gaps:
        span = f"{gap.start}" if gap.start == gap.end else f"{gap.start}..{gap.end}"
        heal = {"running": f" [backfill {gap.backfill_id} running]", "queued": " [queued]"}.get(gap.heal or "", "")
        # a range a heal already covers needs no command (Airflow refuses a second backfill of the DAG)
        command = "" if heal else f"\n    {gap.backfill_command}"
        print(f"{gap.slug}: {gap.periods} missing period(s) {span}{heal}{command}")
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
    return 0 if all(r.status not in ("dag-not-parsed", "refused") for r in results) else EXIT_FAILED


def cmd_quality(args: argparse.Namespace) -> int:
    if args.limit < 1:
        raise BadInput("--limit: at least 1")
    report = quality.slug_quality(chart_engine(), args.slug, flag=args.flag, paging=PageRequest(args.limit))
    q = report.summary
    last = f"; last checked {q.last_checked_at:%Y-%m-%d %H:%M} UTC" if q.last_checked_at else ""
    before = f", {report.unchecked} before the checks" if report.unchecked else ""
    print(f"{report.slug}: {q.rankings_flagged} of {q.rankings_checked} checked rankings flagged "
          f"({q.rankings_stored} stored{before}){last}")
    print("  " + " · ".join(f"{flag} {n}" for flag, n in q.flag_counts.items()))
    page = report.rankings
    if not page.total:
        print(f"no ranking flagged {args.flag}" if args.flag else "no flagged ranking")
        return 0
    more = f"; the newest {len(page.items)} (--limit for more)" if page.total > len(page.items) else ""
    print(f"{page.total} flagged ranking(s){' with ' + args.flag if args.flag else ''}, newest first{more}:")
    for r in page.items:
        print(f"  {r.period}  " + "; ".join(str(n) for n in r.notes))
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


