"""`chartsync` command line: bad input -> a clear message, exit code 2, nothing written; -o formats; the
chart DB's reads load no Airflow; an unreachable database is one line and exit code 1."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from sqlalchemy import func, insert, select

from chartsync import cli
from chartsync.cli.main import build_parser
from chartsync.core.gaps import REPROCESS
from chartsync.seam import orchestration
from chartsync.store.tables import (
    chart,
    chart_ranking,
    chart_ranking_quality,
    chart_sync_audit,
    chart_sync_execution,
    chart_sync_schedule,
)
from conftest import migrated_sqlite


@pytest.fixture
def engine(tmp_path, monkeypatch):
    path = tmp_path / "chart.db"
    engine = migrated_sqlite(path)
    with engine.begin() as conn:
        conn.execute(insert(chart).values(slug="daily-chart", name="Daily", platform="spotify", frequency="daily",
                                          created_at=datetime.now(UTC)))
        conn.execute(insert(chart).values(slug="mystery-chart", name="Mystery", platform="spotify", frequency=None,
                                          publication_weekday=2, created_at=datetime.now(UTC)))
    monkeypatch.setenv("AIRFLOW_CONN_CHART_DB", json.dumps({"conn_type": "sqlite", "host": str(path)}))
    return engine


def schedules(engine) -> list:
    with engine.connect() as conn:
        return conn.execute(select(chart_sync_schedule)).all()


@pytest.mark.parametrize(("argv", "message"), [
    (["schedules", "add", "no-such-chart"], "unknown chart 'no-such-chart'"),
    (["schedules", "add", "daily-chart", "--frequency", "custom"], "Interval (hours): required for the custom"),
    (["schedules", "add", "daily-chart", "--interval-hours", "5"], "Interval (hours): only goes with the custom"),
    (["schedules", "add", "daily-chart", "--frequency", "cron"], "Cron expression: required for the cron"),
    (["schedules", "add", "daily-chart", "--frequency", "cron", "--cron", "61 * * * *"], "not a valid cron"),
    (["schedules", "remove", "daily-chart"], "has no sync schedule"),
    (["charts", "import", "--platform", " "], "--platform: name a platform"),
    # every command that names a chart refuses an unknown one by its slug
    (["schedules", "remove", "no-such-chart"], "unknown chart 'no-such-chart'"),
    (["schedules", "activate", "no-such-chart"], "unknown chart 'no-such-chart'"),
    (["sync", "no-such-chart"], "unknown chart 'no-such-chart'"),
    (["gaps", "list", "no-such-chart"], "unknown chart 'no-such-chart'"),
    (["gaps", "audit", "no-such-chart"], "unknown chart 'no-such-chart'"),
    (["gaps", "heal", "no-such-chart"], "unknown chart 'no-such-chart'"),
    (["gaps", "list", "daily-chart"], "chart 'daily-chart' has no sync schedule"),
    (["gaps", "heal", "daily-chart"], "chart 'daily-chart' has no sync schedule"),
    (["quality", "no-such-chart"], "unknown chart 'no-such-chart'"),
    (["quality", "daily-chart"], "chart 'daily-chart' has no sync schedule"),
])
def test_bad_input_exits_2_and_writes_nothing(engine, capsys, argv, message):
    assert cli.main(argv) == 2
    assert message in capsys.readouterr().err
    assert schedules(engine) == []


@pytest.mark.parametrize(("argv", "message"), [
    (["schedules", "add", "daily-chart", "--frequency", "fortnightly"], "Sync frequency: unknown frequency"),
    (["schedules", "add", "daily-chart", "--frequency", "custom", "--interval-hours", "0"],
     "Interval (hours): must be between 1 and 744"),
    (["schedules", "add", "daily-chart", "--frequency", "custom", "--interval-hours", "six"],
     "Interval (hours): must be a whole number of hours"),
])
def test_argument_errors_exit_2(engine, capsys, argv, message):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "error" in err and message in err
    assert schedules(engine) == []


def test_output_names_charts_by_slug(engine, capsys, monkeypatch, airflow_db):
    monkeypatch.setattr(orchestration, "set_paused", lambda dag_id, paused: False)  # the DAG is not parsed
    assert cli.main(["schedules", "add", "daily-chart", "--no-history"]) == 0
    assert capsys.readouterr().out.startswith("daily-chart: scheduled daily")
    assert cli.main(["gaps", "list", "daily-chart"]) == 0
    assert capsys.readouterr().out.startswith("daily-chart: ")
    assert cli.main(["schedules", "remove", "daily-chart"]) == 0
    assert capsys.readouterr().out.startswith("daily-chart: sync schedule removed; chart_sync__daily-chart ")


def test_add_detects_frequency_list_and_duplicate(engine, capsys, airflow_db):
    assert cli.main(["schedules", "add", "daily-chart"]) == 0
    assert cli.main(["schedules", "add", "mystery-chart", "--no-history", "--inactive"]) == 0
    rows = {r.chart_id: r for r in schedules(engine)}
    assert rows[1].sync_frequency == "daily"  # from the chart
    assert rows[2].sync_frequency == "weekly"  # unknown chart frequency: weekly
    assert rows[2].is_active is False and rows[2].sync_historical_data is False
    assert rows[2].history_start.weekday() == 2  # aligned on the chart's publication weekday
    capsys.readouterr()
    assert cli.main(["schedules", "add", "daily-chart"]) == 2
    assert "already has a sync schedule" in capsys.readouterr().err
    assert cli.main(["schedules", "list"]) == 0
    listing = capsys.readouterr().out
    assert "daily-chart" in listing and "mystery-chart" in listing
    assert cli.main(["schedules", "remove", "daily-chart"]) == 0
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(chart_sync_schedule)).scalar() == 1
        audit = conn.execute(select(chart_sync_audit).order_by(chart_sync_audit.c.id)).all()
    assert [a.action for a in audit] == ["create", "create", "delete"]
    assert all(a.actor.startswith("cli:") for a in audit)


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    for command in ("db", "charts", "schedules", "gaps", "quality", "settings"):
        assert command in out


def test_the_usage_line_names_every_command_group(capsys):
    parser = build_parser()
    groups = next(a for a in parser._actions if a.dest == "group").choices
    assert {"db", "charts", "schedules", "sync", "gaps", "settings", "quality", "executions",
            "audience"} <= set(groups)
    usage = " ".join(parser.format_usage().split())
    assert "{" + ",".join(groups) + "}" in usage


def test_gaps_heal_help_names_the_reprocess_behaviour_the_backfills_use(capsys):
    with pytest.raises(SystemExit):
        cli.main(["gaps", "heal", "--help"])
    assert f"reprocess behaviour '{REPROCESS}'" in " ".join(capsys.readouterr().out.split())


SCHEDULE_KEYS = ["id", "chart", "platform", "frequency", "interval_hours", "cron", "active", "history_start"]


def add_schedules(engine) -> None:
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(insert(chart_sync_schedule), [
            {"chart_id": 1, "is_active": True, "sync_frequency": "daily", "custom_interval_hours": None,
             "history_start": datetime(2025, 12, 1).date(), "created_at": now, "updated_at": now},
            {"chart_id": 2, "is_active": False, "sync_frequency": "custom", "custom_interval_hours": 6,
             "history_start": datetime(2025, 12, 3).date(), "created_at": now, "updated_at": now}])


def test_schedules_list_as_json_yaml_and_plain(engine, capsys):
    add_schedules(engine)
    assert cli.main(["schedules", "list", "-o", "json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert [list(row) for row in listing] == [SCHEDULE_KEYS, SCHEDULE_KEYS]
    assert listing[0] == {"id": 1, "chart": "daily-chart", "platform": "spotify", "frequency": "daily",
                          "interval_hours": None, "cron": None, "active": True, "history_start": "2025-12-01"}
    assert listing[1]["interval_hours"] == 6 and listing[1]["active"] is False

    assert cli.main(["schedules", "list", "--output", "yaml"]) == 0
    assert yaml.safe_load(capsys.readouterr().out) == listing

    assert cli.main(["schedules", "list", "-o", "plain"]) == 0
    header, *rows = capsys.readouterr().out.splitlines()
    assert header.split() == SCHEDULE_KEYS
    assert rows[1].split() == ["2", "mystery-chart", "spotify", "custom", "6", "no", "2025-12-03"]

    assert cli.main(["schedules", "list"]) == 0  # table, Airflow's look; no colour when piped
    out = capsys.readouterr().out
    assert "daily-chart" in out and "=+=" in out and "\x1b[" not in out


def test_an_empty_list_is_an_empty_json_list_and_a_hint_in_a_table(engine, capsys):
    assert cli.main(["schedules", "list", "-o", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert cli.main(["schedules", "list"]) == 0
    assert capsys.readouterr().out.startswith("no sync schedules (add one: chartsync schedules add SLUG)")


def test_an_unknown_output_format_is_bad_input(engine, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["schedules", "list", "-o", "csv"])
    assert exit_.value.code == 2 and "invalid choice: 'csv'" in capsys.readouterr().err


RUNNER = textwrap.dedent("""
    import json, sys
    from chartsync.cli.main import main
    code = main(sys.argv[1:])
    print(json.dumps({"code": code, "airflow": sorted(m for m in sys.modules if m.split(".")[0] == "airflow")}),
          file=sys.stderr)
""")


def run_cli(tmp_path: Path, conn: str, *argv: str) -> tuple[str, list[str], dict]:
    """``chartsync ARGV`` in a new process with ``AIRFLOW_CONN_CHART_DB=conn`` and the executor in the
    environment (as make run and the image set them): its stdout, its stderr's lines but the last, and the last
    (exit code and the airflow modules the process imported)."""
    runner = tmp_path / "runner.py"
    runner.write_text(RUNNER)
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "AIRFLOW_CONN_CHART_DB": conn, "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
           "PYTHONPATH": os.pathsep.join([str(root / "include"), str(root / "plugins")])}
    done = subprocess.run([sys.executable, str(runner), *argv], env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    *err, last = done.stderr.splitlines()
    return done.stdout, err, json.loads(last)


def test_a_read_of_the_chart_db_imports_no_airflow(engine, tmp_path):
    add_schedules(engine)
    conn = os.environ["AIRFLOW_CONN_CHART_DB"]
    out, err, result = run_cli(tmp_path, conn, "schedules", "list", "-o", "json")
    assert [row["chart"] for row in json.loads(out)] == ["daily-chart", "mystery-chart"]
    assert result == {"code": 0, "airflow": []} and err == []
    out, err, result = run_cli(tmp_path, conn, "quality", "daily-chart", "-o", "json")
    assert json.loads(out) == [] and result == {"code": 0, "airflow": []} and err == []


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed again when the socket is: nothing listens there


@pytest.mark.parametrize("conn", [
    "postgresql://chart:s3cret@127.0.0.1:{port}/charts",
    '{{"conn_type": "postgres", "host": "127.0.0.1", "port": {port}, "login": "chart", "password": "s3cret", '
    '"schema": "charts"}}',
])
def test_an_unreachable_chart_db_is_one_line_naming_it_and_exit_1(tmp_path, conn):
    port = closed_port()
    out, err, result = run_cli(tmp_path, conn.format(port=port), "schedules", "list", "-o", "json")
    assert result == {"code": 1, "airflow": []} and out == ""
    assert len(err) == 1, err
    assert err[0].startswith(f"chartsync: failed: chart_db at 127.0.0.1:{port}/charts: ")
    assert "s3cret" not in err[0]


def test_a_sqlite_chart_db_in_a_missing_folder_is_one_line_and_exit_1(tmp_path, capsys, monkeypatch):
    path = tmp_path / "no-such-folder" / "chart.db"
    monkeypatch.setenv("AIRFLOW_CONN_CHART_DB", f"sqlite:///{path}")
    assert cli.main(["schedules", "list"]) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"chartsync: failed: chart_db at {path}: unable to open database file"]


def test_quality_shows_the_schedule_pages_summary_and_flagged_rankings(engine, capsys, monkeypatch):
    monkeypatch.setattr(orchestration, "set_paused", lambda dag_id, paused: False)
    assert cli.main(["schedules", "add", "daily-chart", "--no-history"]) == 0
    first, now = datetime(2026, 10, 1, tzinfo=UTC).date(), datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
    flags = {1: ["short", "gaps"], 3: ["churn"]}  # day 0: stored before the checks
    with engine.begin() as conn:
        for day in range(4):
            period = first + timedelta(days=day)
            ranking_id = conn.execute(insert(chart_ranking).values(
                chart_id=1, period=period, ranking_date=period.isoformat(), entry_count=143,
                fetched_at=now)).inserted_primary_key[0]
            if day:
                conn.execute(insert(chart_ranking_quality).values(
                    ranking_id=ranking_id, chart_id=1, period=period, entry_count=143, expected_count=200,
                    missing_positions=57 if day == 1 else 0, new_share=0.4 if day == 3 else 0.05,
                    usual_new_share=0.05, flags=flags.get(day, []), flagged=day in flags, checked_at=now))
    capsys.readouterr()
    assert cli.main(["quality", "daily-chart", "--limit", "1", "-o", "plain"]) == 0
    assert [line.split(maxsplit=3) for line in capsys.readouterr().out.splitlines()] == [
        ["chart", "period", "flags", "notes"],
        ["daily-chart", "2026-10-04", "churn", "churn: 40% new entries, usually 5%"]]
    assert cli.main(["quality", "daily-chart", "--limit", "1"]) == 0
    summary = capsys.readouterr().out.splitlines()
    assert summary[:3] == [
        "daily-chart: 2 of 3 checked rankings flagged (4 stored, 1 before the checks); last checked "
        "2026-11-24 15:00 UTC",
        "  short 1 · gaps 1 · missing_streams 0 · churn 1 · previous_mismatch 0",
        "2 flagged ranking(s), newest first; the newest 1 (--limit for more):"]
    assert "churn: 40% new entries, usually 5%" in summary[-1]
    assert cli.main(["quality", "daily-chart", "--flag", "gaps", "-o", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == [
        {"chart": "daily-chart", "period": "2026-10-02", "flags": ["short", "gaps"],
         "notes": ["short: 143 of 200 entries", "gaps: 57 positions missing"]}]
    assert cli.main(["quality", "daily-chart", "--flag", "previous_mismatch"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "no ranking flagged previous_mismatch"
    with pytest.raises(SystemExit):
        cli.main(["quality", "daily-chart", "--flag", "bogus"])
    assert "invalid choice: 'bogus'" in capsys.readouterr().err


def test_sync_runs_the_same_service_as_the_dag_task(engine, capsys, emulator, emulator_admin, monkeypatch,
                                                   airflow_db):
    slug = "apple-music-top-100-us-daily"
    monkeypatch.setenv("AIRFLOW_CONN_SOUNDCHARTS_DEFAULT", json.dumps(
        {"conn_type": "http", "host": emulator.url, "login": "soundcharts", "password": "soundcharts"}))
    with engine.begin() as conn:
        conn.execute(insert(chart).values(slug=slug, name="Apple Music US", platform="apple-music", frequency="daily",
                                          created_at=datetime.now(UTC)))
    assert cli.main(["schedules", "add", slug, "--no-metadata"]) == 0
    period = (datetime.now(UTC) - timedelta(days=3)).date()
    capsys.readouterr()
    assert cli.main(["sync", slug, "--period", period.isoformat()]) == 0
    assert f"period {period}: rankings created=1" in capsys.readouterr().out
    with engine.connect() as conn:
        assert conn.execute(select(chart_ranking.c.period)).scalars().all() == [period]
        execution = conn.execute(select(chart_sync_execution)).one()
    assert execution.status == "success" and execution.run_id.startswith("cli__")
    assert cli.main(["sync", slug, "--period", period.isoformat()]) == 0  # a re-sync changes nothing
    assert "rankings created=0 updated=0" in capsys.readouterr().out

    emulator_admin.fault(kind="unpublished", path_contains=slug)  # nothing published: fails, exit 1
    assert cli.main(["sync", slug]) == 1
    assert "no published ranking" in capsys.readouterr().err
    assert cli.main(["sync", "daily-chart"]) == 2  # no schedule
    assert "has no active sync schedule" in capsys.readouterr().err


@pytest.mark.parametrize("value", [
    "sqlite:////tmp/x/chart.db",
    "postgresql://chart:p%40ss@db.example:5433/charts",
    "postgres://chart@db/charts?sslmode=require",
    "http://https://api.example.com:443/v2",
    '{"conn_type": "postgresql", "host": "db", "port": "5432", "login": "u", "password": "p", "schema": "c"}',
    '  {"conn_type": "sqlite", "host": "/data/chart.db", "extra": {"a": 1}}',
])
def test_the_chart_db_variable_is_parsed_as_airflow_parses_it(monkeypatch, value):
    from airflow.models.connection import Connection

    from chartsync.seam.connections import connection_from_env

    monkeypatch.setenv("AIRFLOW_CONN_CHART_DB", value)
    ours = connection_from_env("chart_db")
    stripped = value.strip()
    theirs = (Connection.from_json(stripped, conn_id="chart_db") if stripped.startswith("{")
              else Connection(conn_id="chart_db", uri=stripped))
    fields = ("conn_type", "host", "schema", "login", "password", "port", "extra")
    assert {f: getattr(ours, f) for f in fields} == {f: getattr(theirs, f) for f in fields}


def test_db_downgrade_rolls_the_chart_db_back_and_upgrade_returns_it(engine, capsys):
    from chartsync.store.migrate import current_revision

    head = current_revision(engine)
    back = f"{int(head) - 1:04d}"
    assert cli.main(["db", "downgrade", back]) == 0
    assert f"chart DB at revision {back}" in capsys.readouterr().out and current_revision(engine) == back
    assert cli.main(["db", "upgrade"]) == 0
    assert current_revision(engine) == head


# -- the quota -----------------------------------------------------------------------------------------------
def record_quota(engine, remaining: int = 4321) -> None:
    from chartsync.core.quota import QuotaReading
    from chartsync.store import quota as quota_store

    now = datetime.now(UTC)
    quota_store.record_reading(engine, QuotaReading(remaining, now - timedelta(minutes=2), {}), "response")
    quota_store.add_calls(engine, 1, 250, now.date())
    quota_store.add_calls(engine, None, 50, now.date() - timedelta(days=2))


def test_quota_reports_the_reading_recorded_and_what_was_spent(engine, capsys):
    assert cli.main(["quota", "-o", "json"]) == 0
    (never,) = json.loads(capsys.readouterr().out)
    assert never["remaining"] is None and never["state"] == "never seen" and never["charts"] == []
    record_quota(engine)
    assert cli.main(["quota", "-o", "json"]) == 0
    (body,) = json.loads(capsys.readouterr().out)
    assert list(body) == ["remaining", "seen_at", "spent_24h", "spent_30d", "burn_per_day", "runs_out_on",
                          "reserve", "below_reserve", "state", "charts"]
    assert (body["remaining"], body["spent_24h"], body["spent_30d"], body["reserve"]) == (4321, 250, 300, 1000)
    assert body["burn_per_day"] == 100.0 and body["below_reserve"] is False
    assert body["charts"] == [{"chart_id": 1, "slug": "daily-chart", "calls": 250},
                              {"chart_id": None, "slug": None, "calls": 50}]
    assert cli.main(["quota", "-o", "yaml"]) == 0
    assert yaml.safe_load(capsys.readouterr().out) == [body]
    assert cli.main(["quota"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Soundcharts quota: 4,321 left, seen ") and "(above the reserve of 1,000)" in out
    assert "spent: 250 today (UTC), 300 in 30 days; burn 100.0 a day; runs out on" in out
    assert "daily-chart" in out and "(no chart: metadata, audience, import)" in out


def test_quota_below_the_reserve_says_what_waits(engine, capsys, monkeypatch):
    monkeypatch.setenv("CHARTSYNC_QUOTA_RESERVE", "5000")
    record_quota(engine)
    assert cli.main(["quota", "-o", "plain"]) == 0
    assert "below the reserve of 5,000: history waits, the newest periods go on" in capsys.readouterr().out


def test_quota_reads_the_chart_db_without_airflow(engine, tmp_path):
    record_quota(engine)
    out, err, result = run_cli(tmp_path, os.environ["AIRFLOW_CONN_CHART_DB"], "quota", "-o", "json")
    assert json.loads(out)[0]["remaining"] == 4321
    assert result == {"code": 0, "airflow": []} and err == []


def test_quota_refresh_reads_the_usage_endpoint(engine, capsys, emulator, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_SOUNDCHARTS_DEFAULT", json.dumps(
        {"conn_type": "http", "host": emulator.url, "login": "soundcharts", "password": "soundcharts"}))
    requests_before = emulator_requests(emulator)
    assert cli.main(["quota", "--refresh", "-o", "json"]) == 0
    (body,) = json.loads(capsys.readouterr().out)
    assert body["remaining"] is not None and body["spent_24h"] == 0  # the usage endpoint spends none
    assert emulator_requests(emulator) == requests_before + 1


def emulator_requests(emulator) -> int:
    import requests

    return requests.get(f"{emulator.url}/__admin/requests", timeout=5).json()["total"]


def test_schedules_add_prints_the_estimate_beside_the_quota(engine, capsys, monkeypatch):
    monkeypatch.setattr(orchestration, "set_paused", lambda dag_id, paused: False)  # the DAG is not parsed
    record_quota(engine, remaining=600)
    assert cli.main(["schedules", "add", "daily-chart"]) == 0
    line = capsys.readouterr().out.splitlines()[-1]
    assert line.startswith("daily-chart: first sync and history: about ") and "API calls; 600 left, leaves -" in line
    assert "Warning: about " in line and "would need more than the 600 left" in line
