"""The chart warehouse schema (SQLAlchemy Core). Alembic migrations in ``migrations/`` own it."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    literal_column,
    text,
)

metadata = MetaData()

chart = Table(
    "chart",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("slug", String(200), nullable=False, unique=True),
    Column("name", String(300), nullable=False),
    Column("platform", String(50), nullable=False, index=True),
    Column("country_code", String(10)),
    Column("frequency", String(20)),  # as the API publishes it: daily, weekly, monthly
    Column("chart_type", String(20), nullable=False, server_default="song"),
    Column("max_results", Integer),
    Column("publication_weekday", Integer),  # 0 = Monday; weekly charts only
    Column("created_at", DateTime(timezone=True), nullable=False),
)

chart_sync_schedule = Table(
    "chart_sync_schedule",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("chart_id", Integer, ForeignKey("chart.id", ondelete="CASCADE"), nullable=False, unique=True),
    Column("is_active", Boolean, nullable=False, server_default="1"),
    Column("sync_frequency", String(20), nullable=False),
    Column("custom_interval_hours", Integer),
    Column("cron_expression", String(100)),
    Column("sync_immediately", Boolean, nullable=False, server_default="1"),
    Column("sync_historical_data", Boolean, nullable=False, server_default="1"),
    Column("fetch_track_metadata", Boolean, nullable=False, server_default="1"),
    Column("deadline_hours", Float),
    Column("history_start", Date, nullable=False),  # fixed at creation, never moves
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_chart_sync_schedule_active", "is_active"),
)

chart_ranking = Table(
    "chart_ranking",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("chart_id", Integer, ForeignKey("chart.id", ondelete="CASCADE"), nullable=False),
    Column("period", Date, nullable=False),
    Column("ranking_date", String(40), nullable=False),  # the API's ATOM datetime, passed back verbatim
    Column("entry_count", Integer, nullable=False),
    Column("fetched_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("chart_id", "period", name="uq_chart_ranking_chart_period"),
)

track = Table(
    "track",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("song_uuid", String(64), nullable=False, unique=True),
    Column("name", String(500), nullable=False),
    Column("credit_name", String(500)),
    Column("image_url", String(1000)),
    Column("isrc", String(20)),
    Column("artists", JSON),
    Column("release_date", Date),
    Column("duration_seconds", Integer),
    Column("explicit", Boolean),
    Column("genres", JSON),
    Column("labels", JSON),
    Column("language_code", String(10)),
    Column("metadata_fetched_at", DateTime(timezone=True), index=True),
    Column("audience_fetched_at", DateTime(timezone=True)),  # the last audience fetch, even an empty one
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

chart_ranking_entry = Table(
    "chart_ranking_entry",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("ranking_id", Integer, ForeignKey("chart_ranking.id", ondelete="CASCADE"), nullable=False),
    Column("position", Integer, nullable=False),
    Column("previous_position", Integer),
    Column("trend", String(10), nullable=False),  # new, up, down, same, re-entry
    Column("time_on_chart", Integer),
    Column("time_on_chart_unit", String(5)),  # DOC (days) or WOC (weeks), as the API gives
    Column("weeks_on_chart", Integer),
    Column("streams", BigInteger),
    Column("track_id", Integer, ForeignKey("track.id"), nullable=False, index=True),
    UniqueConstraint("ranking_id", "position", name="uq_chart_ranking_entry_position"),
)

chart_ranking_quality = Table(
    "chart_ranking_quality",
    metadata,
    # The soft checks of one stored ranking (``core.quality``), written in the ranking's transaction.
    # ``flags`` names the checks it failed ([] = clean); a NULL measure means "could not be measured"
    # (no published size, a platform without streams, too little history, no previous period stored).
    Column("ranking_id", Integer, ForeignKey("chart_ranking.id", ondelete="CASCADE"), primary_key=True),
    Column("chart_id", Integer, ForeignKey("chart.id", ondelete="CASCADE"), nullable=False),
    Column("period", Date, nullable=False),
    Column("entry_count", Integer, nullable=False),
    Column("expected_count", Integer),  # the chart's published size (chart.max_results)
    Column("missing_positions", Integer, nullable=False),  # holes in 1..the highest position
    Column("no_streams_share", Float),  # entries without streams, on a platform that has them
    Column("new_share", Float, nullable=False),  # entries new to the chart this period
    Column("usual_new_share", Float),  # the chart's mean new_share over its recent rankings
    Column("previous_checked", Integer, nullable=False, server_default="0"),  # entries with a previous position
    Column("previous_mismatches", Integer),  # ... that the previous stored period contradicts
    Column("flags", JSON, nullable=False),
    Column("flagged", Boolean, nullable=False),
    Column("checked_at", DateTime(timezone=True), nullable=False),
    Index("ix_chart_ranking_quality_chart_period", "chart_id", "period"),
)

track_audience = Table(
    "track_audience",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("track_id", Integer, ForeignKey("track.id", ondelete="CASCADE"), nullable=False),
    Column("platform", String(50), nullable=False),
    Column("date", Date, nullable=False),
    Column("value", BigInteger),
    Column("fetched_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("track_id", "platform", "date", name="uq_track_audience_day"),
)

chart_sync_execution = Table(
    "chart_sync_execution",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("chart_id", Integer, ForeignKey("chart.id", ondelete="CASCADE"), nullable=False),
    Column("dag_id", String(250), nullable=False),
    Column("run_id", String(250), nullable=False),
    Column("try_number", Integer, nullable=False, server_default="1"),
    Column("period", Date),
    Column("status", String(20), nullable=False),  # running, success, failed
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("completed_at", DateTime(timezone=True)),
    Column("duration_seconds", Float),
    Column("rankings_created", Integer, nullable=False, server_default="0"),
    Column("rankings_updated", Integer, nullable=False, server_default="0"),
    Column("entries_written", Integer, nullable=False, server_default="0"),
    Column("tracks_created", Integer, nullable=False, server_default="0"),
    Column("tracks_updated", Integer, nullable=False, server_default="0"),
    Column("api_requests", Integer, nullable=False, server_default="0"),
    # Track metadata fetched later by chart_sync_track_metadata for the tracks this sync found.
    Column("metadata_created", Integer, nullable=False, server_default="0"),
    Column("metadata_updated", Integer, nullable=False, server_default="0"),
    Column("error", Text),
    Index("ix_chart_sync_execution_chart_started", "chart_id", "started_at"),
    Index("ix_chart_sync_execution_started", "started_at"),
    # One failed row per task try, whoever notices the failure first (the task body, a listener,
    # reconciliation with Airflow's state): ``store.executions.insert_failure``.
    Index("uq_chart_sync_execution_failed_try", "dag_id", "run_id", "try_number", unique=True,
          sqlite_where=text("status = 'failed'"), postgresql_where=text("status = 'failed'")),
)

chart_expected_period = Table(
    "chart_expected_period",
    metadata,
    # The periods a chart should have in its history window: from its frequency's calendar and
    # from the API's available rankings. ``expected`` is what gap detection counts: the API's
    # list when we have it (it knows about skipped weeks), else the calendar.
    Column("chart_id", Integer, ForeignKey("chart.id", ondelete="CASCADE"), primary_key=True),
    Column("period", Date, primary_key=True),
    Column("in_calendar", Boolean, nullable=False),
    Column("in_api", Boolean, nullable=False),
    Column("expected", Boolean, nullable=False),
    Column("refreshed_at", DateTime(timezone=True), nullable=False),
)

chart_sync_heal = Table(
    "chart_sync_heal",
    metadata,
    # The gap ranges a heal backfills, one after the other (Airflow allows one active backfill per
    # DAG): ``running`` has its backfill in Airflow, ``queued`` waits for it, then ``done``.
    Column("id", Integer, primary_key=True),
    Column("chart_id", Integer, ForeignKey("chart.id", ondelete="CASCADE"), nullable=False),
    Column("start_period", Date, nullable=False),
    Column("end_period", Date, nullable=False),
    Column("period_count", Integer, nullable=False),
    Column("status", String(20), nullable=False),  # queued, running, done, cancelled
    Column("backfill_id", Integer),
    Column("actor", String(250), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("started_at", DateTime(timezone=True)),
    Column("completed_at", DateTime(timezone=True)),
    Index("ix_chart_sync_heal_chart_status", "chart_id", "status"),
)

chart_sync_alert = Table(
    "chart_sync_alert",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("kind", String(30), nullable=False),  # deadline, degradation, failure, overdue, digest
    Column("chart_id", Integer, ForeignKey("chart.id", ondelete="SET NULL")),
    Column("dag_id", String(250)),
    Column("run_id", String(250)),
    # The task try a failure alert is about: at most one alert per (kind, dag_id, run_id, task_id,
    # try_number); NULL for alerts about no try (deadline, overdue, digest), which the index ignores.
    Column("task_id", String(250)),
    Column("try_number", Integer),
    Column("period", Date),
    Column("message", Text, nullable=False),
    Column("channels", JSON),
    Column("created_at", DateTime(timezone=True), nullable=False, index=True),
    Index("uq_chart_sync_alert_task_try", "kind", "dag_id", "run_id", "task_id", "try_number", unique=True),
)

chart_sync_audit = Table(
    "chart_sync_audit",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("actor", String(250), nullable=False),
    Column("action", String(50), nullable=False),
    Column("entity", String(50), nullable=False),
    Column("entity_id", Integer),
    Column("before", JSON),
    Column("after", JSON),
    Column("created_at", DateTime(timezone=True), nullable=False, index=True),
)

# -- the Soundcharts API quota (store.quota) ---------------------------------------------------------------
chart_sync_quota_reading = Table(
    # What a response's x-quota-remaining (source "response") or the usage endpoint ("usage") said. Bounded:
    # recording keeps the first and the newest reading of each hour and nothing older than 35 days.
    "chart_sync_quota_reading",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("seen_at", DateTime(timezone=True), nullable=False, index=True),
    Column("remaining", Integer),
    Column("source", String(20), nullable=False),  # response | usage
    Column("details", JSON),
)

chart_sync_api_calls = Table(
    # Soundcharts calls spent per chart and UTC day; chart_id NULL for calls tied to no chart (track metadata,
    # audience, the chart import). No foreign key: a deleted chart's calls stay spent.
    "chart_sync_api_calls",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("day", Date, nullable=False),
    Column("chart_id", Integer),
    Column("calls", Integer, nullable=False),
)
# one row per (day, chart), NULL included: a unique index on the chart with NULL as 0 (chart ids start at 1),
# which the upsert names as its conflict target on SQLite and PostgreSQL alike
API_CALLS_CHART_KEY = func.coalesce(chart_sync_api_calls.c.chart_id, literal_column("0"))
Index("uq_chart_sync_api_calls_day_chart", chart_sync_api_calls.c.day, API_CALLS_CHART_KEY, unique=True)

chart_sync_quota_episode = Table(
    # A spell of waiting for the Soundcharts quota (``store.alerts``: open_quota_episode, close_quota_episode):
    # opened by the first sync that has to wait, closed by the first reading that shows the reserve back. Its
    # alerts go out once each: ``is_open`` is TRUE on the open episode and NULL on closed ones, and a unique
    # index on it lets one episode be open at a time, whichever process opens it first.
    "chart_sync_quota_episode",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("is_open", Boolean),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("remaining_at_start", Integer),
    Column("ended_at", DateTime(timezone=True)),
    Column("remaining_at_end", Integer),
    Column("periods_waited", Integer, nullable=False, server_default="0"),  # tries that started waiting in it
    Index("uq_chart_sync_quota_episode_open", "is_open", unique=True),
)
