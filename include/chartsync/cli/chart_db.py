"""The ``chartsync`` commands that need the chart DB and nothing of Airflow: they import no ``airflow``
(about 1.3 s), so they answer in a fraction of a second. ``chartsync.cli.commands`` has the others."""

from __future__ import annotations

import argparse

from chartsync.cli.errors import BadInput
from chartsync.cli.output import print_as
from chartsync.core.schedule import ScheduleError, ScheduleNotFound
from chartsync.store.charts import ChartNotFound
from chartsync.store.engine import ChartDbConfigError, chart_engine
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


def cmd_schedules_list(args: argparse.Namespace) -> int:
    # the store's rows, as services.schedules.load_rows hands them on: that module loads Airflow's seam
    print_as(({"id": r.id, "chart": r.slug, "platform": r.platform, "frequency": r.sync_frequency,
               "interval_hours": r.custom_interval_hours, "cron": r.cron_expression, "active": r.is_active,
               "history_start": r.history_start} for r in load_rows(chart_engine())),
             args.output, empty="no sync schedules (add one: chartsync schedules add SLUG)")
    return 0
