"""Every knob of chart-sync in one place: names Airflow knows us by, environment variables,
Airflow Variables, freshness ages and task defaults.

Pure: no Airflow, no database. What a knob *means* for a frequency (publication waits,
deadlines, overdue graces) lives beside the calendar in ``chartsync.core.calendar``; where a
value is read at run time (Variables, ``airflow.cfg``) is ``chartsync.seam.config``.
"""

from __future__ import annotations

import os
import sys
import zlib
from datetime import timedelta
from pathlib import Path

# -- what Airflow knows us by ------------------------------------------------------------------------
OWNER = "chart-sync"
TAG = "chart-sync"
DAG_ID_PREFIX = "chart_sync__"  # + the chart's slug: one DAG per scheduled chart
TRACK_METADATA_DAG_ID = "chart_sync_track_metadata"
AUDIENCE_DAG_ID = "chart_sync_audience"
GAP_AUDIT_DAG_ID = "chart_sync_gap_audit"
DIGEST_DAG_ID = "chart_sync_alert_digest"
RETENTION_DAG_ID = "chart_sync_retention"
RANKINGS_ASSET_URI = "chartsync://rankings"  # every sync emits it (and <URI>/<slug>); track metadata consumes it
ASSET_GROUP = "chart-sync"

# -- the chart DAG files: dags/chart_sync_00.py ... one per shard, each parsed on its own ------------------------
CHART_DAG_SHARDS = 8  # 10,000 schedules: ~1,250 DAGs a file. Changing it moves DAGs: add or remove files too
CHART_DAG_FILE = "dags/chart_sync_{shard:02d}.py"

# -- connections and the pool --------------------------------------------------------------------------
CHART_DB_CONN_ID = "chart_db"
SOUNDCHARTS_CONN_ID = "soundcharts_default"
SOUNDCHARTS_POOL = "soundcharts_api"  # sized to the API plan (airflow_settings.yaml)
SOUNDCHARTS_URL = "https://customer.api.soundcharts.com"

# -- Airflow Variables -----------------------------------------------------------------------------------
ALERT_CHANNELS_VARIABLE = "chartsync_alert_channels"  # comma-separated subset of webhook,slack,email
ALERT_CONN_ID_VARIABLES = {  # channel -> (Variable naming its connection, default connection id)
    "webhook": ("chartsync_alert_webhook_conn_id", "chartsync_alert_webhook"),
    "slack": ("chartsync_alert_slack_conn_id", "chartsync_alert_slack"),
    "email": ("chartsync_alert_smtp_conn_id", "chartsync_alert_smtp"),
}
ALERT_EMAIL_TO_VARIABLE = "chartsync_alert_email_to"
ALERT_EMAIL_FROM_VARIABLE = "chartsync_alert_email_from"
RETENTION_VARIABLE = "chartsync_retention_days"
DEFAULT_RETENTION_DAYS = 180

# -- environment variables --------------------------------------------------------------------------------
RETRY_DELAY_ENV = "CHARTSYNC_RETRY_DELAY_SECONDS"  # first retry wait (tests use 1 s); default 30
DEADLINE_ALERTS_ENV = "CHARTSYNC_DEADLINE_ALERTS"  # "off": chart DAGs without Deadline Alerts
SNAPSHOT_ENV = "CHARTSYNC_SCHEDULE_SNAPSHOT"  # where the last-known-good schedule snapshot lives
SOUNDCHARTS_APP_ID_ENV, SOUNDCHARTS_API_KEY_ENV, SOUNDCHARTS_URL_ENV = (
    "SOUNDCHARTS_APP_ID", "SOUNDCHARTS_API_KEY", "SOUNDCHARTS_URL")
PARALLELISM_ENV = "CHARTSYNC_PARALLELISM"  # make run: task slots (default one per core, 2 to 8)
HOST_ENV = "CHARTSYNC_HOST"  # make run: the api-server's interface (default 127.0.0.1)
PG_PORT_ENV, DEFAULT_PG_PORT = "CHARTSYNC_PG_PORT", 5439  # make run/setup: the embedded PostgreSQL's port
RECONCILE_INTERVAL_ENV = "CHARTSYNC_RECONCILE_SECONDS"  # the scheduler's reconciler (tests: a few seconds)
CHART_DB_ENV = "CHARTSYNC_CHART_DB"  # make run/setup: "sqlite" keeps the chart DB in $AIRFLOW_HOME/chart.db
QUOTA_RESERVE_ENV = "CHARTSYNC_QUOTA_RESERVE"  # Soundcharts calls to keep in hand (core.quota's estimates warn)
QUOTA_RECHECK_ENV = "CHARTSYNC_QUOTA_RECHECK_SECONDS"  # how often the quota is read again (usage endpoint)

# -- task defaults (every chart-sync DAG starts from these; builders.defaults layers them) -------------------
RETRIES = 3
RETRY_EXPONENTIAL_BACKOFF = 2.0
MAX_RETRY_DELAY = timedelta(minutes=30)
EXECUTION_TIMEOUT = timedelta(minutes=30)
CHART_DAG_MAX_ACTIVE_RUNS = 4

# -- freshness and batching ----------------------------------------------------------------------------------
TRACK_METADATA_MAX_AGE = timedelta(days=30)
TRACK_METADATA_BATCH_SIZE = 50
TRACK_METADATA_MAX_PER_RUN = 5000  # one try stays well inside the execution timeout
AUDIENCE_MAX_AGE = timedelta(days=7)
AUDIENCE_WINDOW_DAYS = 90  # the API serves at most 90 days a call: one call per platform


# -- data quality (core.quality): hard checks reject a ranking before anything is written; soft checks
# store it and flag it in chart_ranking_quality. Change a threshold here; it applies to rankings stored after.
QUALITY_MIN_FILL = 1.0  # flag "short": fewer entries than this share of the chart's published size
QUALITY_STREAM_PLATFORMS = ("spotify",)  # platforms whose chart entries normally carry streams
QUALITY_MAX_NO_STREAMS_SHARE = 0.05  # flag "missing_streams": more entries than this without streams
QUALITY_CHURN_HISTORY = 30  # the recent rankings the chart's usual churn is the mean of
QUALITY_CHURN_MIN_HISTORY = 5  # fewer stored before it: churn is not judged
QUALITY_CHURN_FACTOR = 3.0  # flag "churn": new entries above this multiple of the usual share ...
QUALITY_CHURN_MIN_SHARE = 0.10  # ... and above this share of the ranking
QUALITY_MAX_PREVIOUS_MISMATCH_SHARE = 0.02  # flag "previous_mismatch": previous positions the previous period contradicts
QUALITY_FLAGS = ("short", "gaps", "missing_streams", "churn", "previous_mismatch")
QUALITY_CHECK_DAG_ID = "chart_sync_quality_checks"  # the daily warehouse-wide checks (common.sql operators)

# -- reconciling Airflow's failures into chart-sync (services.failures; the scheduler's reconciler) ------------
RECONCILE_LOOKBACK = timedelta(days=3)  # how far back a pass looks
RECONCILE_LIMIT = 500  # task instances (and as many history rows) per pass
DEFAULT_RECONCILE_SECONDS = 60.0  # how often the scheduler's reconciler runs
# a try that ended this recently is left to the hook that saw it (it knows why: "marked failed by
# hand"); the background passes record it after that, the on-demand command at once
RECONCILE_SETTLE = timedelta(seconds=10)


def reconcile_interval() -> float:
    try:
        return max(float(os.environ.get(RECONCILE_INTERVAL_ENV, DEFAULT_RECONCILE_SECONDS)), 1.0)
    except ValueError:
        return DEFAULT_RECONCILE_SECONDS


# -- the Soundcharts API quota (core.quota, services.quota) ---------------------------------------------------
# The reserve: a day of newest periods for a few hundred charts. A daily chart of 200 entries costs 2 calls a
# period, so 300 charts are ~600 calls a day, plus track metadata and the gap audit's listings: 1,000 calls
# keep the schedules running for about a day after a warning, time to buy quota or pause backfills.
DEFAULT_QUOTA_RESERVE = 1_000
DEFAULT_QUOTA_RECHECK_SECONDS = 900.0  # the usage endpoint is free, but a reading per 15 minutes is enough


def quota_reserve() -> int:
    """CHARTSYNC_QUOTA_RESERVE (calls, >= 0), else 1,000; a value that is not a whole number is ignored."""
    try:
        return max(int(os.environ.get(QUOTA_RESERVE_ENV, DEFAULT_QUOTA_RESERVE)), 0)
    except ValueError:
        return DEFAULT_QUOTA_RESERVE


def quota_recheck_seconds() -> float:
    """CHARTSYNC_QUOTA_RECHECK_SECONDS (at least 1 s), else 900."""
    try:
        return max(float(os.environ.get(QUOTA_RECHECK_ENV, DEFAULT_QUOTA_RECHECK_SECONDS)), 1.0)
    except ValueError:
        return DEFAULT_QUOTA_RECHECK_SECONDS


def retry_delay() -> timedelta:
    return timedelta(seconds=float(os.environ.get(RETRY_DELAY_ENV, "30")))


def airflow_home() -> Path:
    return Path(os.environ.get("AIRFLOW_HOME", "~/airflow")).expanduser()


def chart_dag_shard(slug: str) -> int:
    """The shard, and so the DAG file, of a chart's DAG: a hash of its slug that every process agrees
    on (crc32, not ``hash()``, which is salted per process)."""
    return zlib.crc32(slug.encode()) % CHART_DAG_SHARDS


def chart_dag_file(slug: str) -> str:
    """The DAG file a chart's DAG lives in, as the messages name it: ``dags/chart_sync_03.py``."""
    return CHART_DAG_FILE.format(shard=chart_dag_shard(slug))


def snapshot_path(shard: int) -> Path:
    """The last-known-good copy of one shard's schedule rows (per machine: each dag-processor keeps
    its own); CHARTSYNC_SCHEDULE_SNAPSHOT names the base, ``schedules.json`` -> ``schedules-03.json``."""
    base = Path(os.environ.get(SNAPSHOT_ENV, airflow_home() / "chartsync" / "schedules.json"))
    return base.with_name(f"{base.stem}-{shard:02d}{base.suffix}")


def deadline_alerts_enabled(argv: list[str] | None = None) -> bool:
    """False under ``airflow dags test`` and with CHARTSYNC_DEADLINE_ALERTS=off.

    Airflow 3.3.2's ``dag.test()`` ends a successful run of a DAG that has ``deadline=`` with
    ``AttributeError: 'dict' object has no attribute 'hex'`` (``DagRun.update_state`` looks the
    deadline alerts up by id, but the test copy of the DAG holds their definitions). A test run
    has no scheduler to watch deadlines anyway, so that process builds chart DAGs without them.
    Its sync of the DAG to the metadata DB then stores a version without deadlines until the
    dag-processor parses the file again (seconds to ``min_file_process_interval``).
    """
    if os.environ.get(DEADLINE_ALERTS_ENV, "").strip().lower() in ("off", "false", "0", "no"):
        return False
    argv = sys.argv if argv is None else argv
    # argv[0]: .../bin/airflow, or .../airflow/__main__.py under `python -m airflow`
    return not (len(argv) >= 3 and "airflow" in argv[0] and argv[1:3] == ["dags", "test"])


def soundcharts_credentials() -> dict | None:
    """The real API's connection when SOUNDCHARTS_APP_ID and SOUNDCHARTS_API_KEY are set, else None."""
    app_id, key = os.environ.get(SOUNDCHARTS_APP_ID_ENV), os.environ.get(SOUNDCHARTS_API_KEY_ENV)
    if not (app_id and key):
        return None
    return {"conn_type": "http", "host": os.environ.get(SOUNDCHARTS_URL_ENV, SOUNDCHARTS_URL),
            "login": app_id, "password": key}
