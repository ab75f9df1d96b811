"""The ``chartsync`` commands that need the chart DB and nothing of Airflow: they import no ``airflow``
(about 1.3 s), so they answer in a fraction of a second. ``chartsync.cli.commands`` has the others."""

from __future__ import annotations

import argparse

from chartsync.cli.errors import BadInput
from chartsync.cli.output import print_as
from chartsync.core.paging import PageRequest
from chartsync.core.schedule import ScheduleError, ScheduleNotFound
from chartsync.store.charts import ChartNotFound
from chartsync.store.engine import ChartDbConfigError, chart_engine
from chartsync.services import budget, quality
from chartsync.store.schedules import load_rows
from chartsync.store.tracks import TrackNotFound

BAD_INPUT: tuple[type[Exception], ...] = (BadInput, ScheduleError, ScheduleNotFound, ChartNotFound, TrackNotFound)
FAILED: tuple[type[Exception], ...] = (ChartDbConfigError,)


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from chartsync.store.migrate import current_revision, upgrade  # deferred: alembic, for this command only

    engine = chart_engine()
    upgrade(engine)
    print(f"chart DB at revision {current_revision(engine)} ({engine.url.render_as_string(hide_password=True)})")
    return 0


def cmd_db_downgrade(args: argparse.Namespace) -> int:
    from chartsync.store.migrate import current_revision, downgrade  # deferred: alembic, for this command only

    engine = chart_engine()
    downgrade(engine, args.revision)
    print(f"chart DB at revision {current_revision(engine) or 'base (no chart-sync table)'} "
          f"({engine.url.render_as_string(hide_password=True)})")
    return 0


def cmd_schedules_list(args: argparse.Namespace) -> int:
    # the store's rows, as services.schedules.load_rows hands them on: that module loads Airflow's seam
    print_as(({"id": r.id, "chart": r.slug, "platform": r.platform, "frequency": r.sync_frequency,
               "interval_hours": r.custom_interval_hours, "cron": r.cron_expression, "active": r.is_active,
               "history_start": r.history_start} for r in load_rows(chart_engine())),
             args.output, empty="no sync schedules (add one: chartsync schedules add SLUG)")
    return 0


def cmd_quality(args: argparse.Namespace) -> int:
    if args.limit < 1:
        raise BadInput("--limit: at least 1")
    report = quality.slug_quality(chart_engine(), args.slug, flag=args.flag, paging=PageRequest(args.limit))
    page = report.rankings
    if args.output == "table":  # the schedule page's summary above the table
        q = report.summary
        last = f"; last checked {q.last_checked_at:%Y-%m-%d %H:%M} UTC" if q.last_checked_at else ""
        before = f", {report.unchecked} before the checks" if report.unchecked else ""
        print(f"{report.slug}: {q.rankings_flagged} of {q.rankings_checked} checked rankings flagged "
              f"({q.rankings_stored} stored{before}){last}")
        print("  " + " · ".join(f"{flag} {n}" for flag, n in q.flag_counts.items()))
        if page.total:
            more = f"; the newest {len(page.items)} (--limit for more)" if page.total > len(page.items) else ""
            print(f"{page.total} flagged ranking(s){' with ' + args.flag if args.flag else ''}, newest first{more}:")
    print_as(({"chart": report.slug, "period": r.period, "flags": r.flags, "notes": [str(n) for n in r.notes]}
              for r in page.items), args.output,
             empty=f"no ranking flagged {args.flag}" if args.flag else "no flagged ranking")
    return 0


def cmd_quota(args: argparse.Namespace) -> int:
    print_quota(budget.report(chart_engine()), args.output)
    return 0


def print_quota(report: budget.QuotaReport, output: str) -> None:
    """The quota report: json and yaml one object (the REST API's body); table and plain its lines in words
    above the charts that spent most."""
    if output in ("json", "yaml"):
        print_as([report.as_dict()], output)
        return
    q = report.summary
    seen = f"{q.remaining:,} left, seen {q.seen_at:%Y-%m-%d %H:%M} UTC" if q.seen_at else "left: not known"
    burn = f"{q.burn_per_day:,.1f} a day" if q.burn_per_day is not None else "no calls recorded yet"
    out = f"; runs out on {q.runs_out_on} at that rate" if q.runs_out_on else ""
    print(f"Soundcharts quota: {seen} ({report.state})")
    print(f"spent: {q.spent_24h:,} today (UTC), {q.spent_30d:,} in 30 days; burn {burn}{out}")
    if report.charts:
        print("the charts that spent most, last 30 days:")
    print_as(({"chart": c.slug or "(no chart: metadata, audience, import)", "calls": c.calls}
              for c in report.charts), output, empty="no calls recorded in the last 30 days")
