"""Every chart DAG imports and carries retries, tags and an owner; a bad row hits only its own chart;
each chart's DAG is built by one shard file, the one its slug names."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import insert, update

from chartsync import settings
from chartsync.services import schedules
from chartsync.store.tables import chart, chart_sync_schedule
from conftest import migrated_sqlite

MAINTENANCE_DAGS = {"chart_sync_gap_audit", "chart_sync_track_metadata", "chart_sync_audience",
                    "chart_sync_quality_checks"}  # at least these; every DAG of the package is checked below
ROWS = [
    ("chart-daily", "daily", None, {}),
    ("chart-weekly", "weekly", 4, {}),
    ("chart-monthly", "monthly", None, {}),
    ("chart-custom", "custom", None, {"custom_interval_hours": 6, "frequency": "custom"}),
    ("chart-cron", "daily", None, {"cron_expression": "30 6 * * *", "frequency": "cron"}),
    ("chart-paused", "weekly", 0, {"is_active": False, "sync_historical_data": False}),
    ("chart-broken", "daily", None, {}),
]


@pytest.fixture
def chart_db(tmp_path, monkeypatch):
    path = tmp_path / "chart.db"
    engine = migrated_sqlite(path)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        for slug, freq, weekday, _ in ROWS:
            conn.execute(insert(chart).values(slug=slug, name=slug.title(), platform="spotify", frequency=freq,
                                              publication_weekday=weekday, created_at=now))
    for slug, _, _, extra in ROWS:
        row = next(r for r in _charts(engine) if r.slug == slug)
        schedules.add_schedule(engine, row, today=date(2026, 11, 24), **extra)
    with engine.begin() as conn:  # a row no validation would let through: only its DAG may suffer
        conn.execute(update(chart_sync_schedule).where(chart_sync_schedule.c.chart_id == _id(engine, "chart-broken"))
                     .values(sync_frequency="fortnightly"))
    monkeypatch.setenv("AIRFLOW_CONN_CHART_DB", json.dumps({"conn_type": "sqlite", "host": str(path)}))
    monkeypatch.setenv("CHARTSYNC_SCHEDULE_SNAPSHOT", str(tmp_path / "snapshot.json"))
    return engine


def _charts(engine):
    with engine.connect() as conn:
        return list(conn.execute(chart.select()))


def _id(engine, slug):
    return next(r.id for r in _charts(engine) if r.slug == slug)


def _dagbag(path: str = "dags"):
    from airflow.dag_processing.dagbag import DagBag

    from stacks import ROOT

    return DagBag(dag_folder=str(ROOT / path))


def _chart_dags_by_file() -> dict[str, set[str]]:
    """The chart DAG ids each shard file builds, parsed file by file as the dag-processor does."""
    built = {}
    for k in range(settings.CHART_DAG_SHARDS):
        path = settings.CHART_DAG_FILE.format(shard=k)
        bag = _dagbag(path)
        assert bag.import_errors == {}, path
        built[path] = {d for d in bag.dag_ids if d.startswith("chart_sync__")}
    return built


def test_every_dag_imports_with_retries_tags_and_owner(chart_db):
    bag = _dagbag()
    assert bag.import_errors == {}
    chart_dags = {d for d in bag.dag_ids if d.startswith("chart_sync__")}
    assert chart_dags == {f"chart_sync__{slug}" for slug, *_ in ROWS}
    assert MAINTENANCE_DAGS <= set(bag.dag_ids)
    for dag in bag.dags.values():
        assert dag.tags, dag.dag_id
        for task in dag.tasks:
            assert task.retries >= 3, (dag.dag_id, task.task_id)
            assert task.owner == "chart-sync"
            # a returned dict is one XCom (return_value), not one execution-API call per key
            assert getattr(task, "multiple_outputs", False) is False, (dag.dag_id, task.task_id)


def test_schedule_catchup_and_pause_follow_the_config(chart_db):
    bag = _dagbag()
    daily = bag.dags["chart_sync__chart-daily"]
    assert daily.catchup is True
    assert daily.start_date == datetime(2025, 11, 24, tzinfo=UTC)
    assert daily.timetable.expression == "0 0 * * *"
    assert daily.max_active_runs == 4
    assert [t.task_id for t in daily.tasks] == ["sync_ranking"]  # one task a run: cheap catchup
    assert daily.tasks[0].pool == "soundcharts_api"
    weekly = bag.dags["chart_sync__chart-weekly"]
    assert weekly.timetable.expression == "0 0 * * FRI"
    assert weekly.start_date.weekday() == 4
    assert bag.dags["chart_sync__chart-monthly"].start_date.day == 1
    assert bag.dags["chart_sync__chart-custom"].timetable.delta == timedelta(hours=6)
    assert bag.dags["chart_sync__chart-cron"].timetable.expression == "30 6 * * *"
    paused = bag.dags["chart_sync__chart-paused"]
    assert paused.is_paused_upon_creation is True and paused.catchup is False
    assert daily.is_paused_upon_creation is False
    assert "catchup from **2025-11-24**" in daily.doc_md


def test_bad_row_becomes_a_paused_placeholder_naming_the_field(chart_db):
    bag = _dagbag()
    broken = bag.dags["chart_sync__chart-broken"]
    assert "config-error" in broken.tags
    assert broken.is_paused_upon_creation is True
    assert "sync_frequency" in broken.doc_md and "fortnightly" in broken.doc_md
    assert [t.task_id for t in broken.tasks] == ["config_error"]


def test_the_shard_files_are_the_configured_ones():
    from stacks import ROOT

    files = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "dags").glob("chart_sync*.py"))
    assert files == [settings.CHART_DAG_FILE.format(shard=k) for k in range(settings.CHART_DAG_SHARDS)]
    for k, path in enumerate(files):
        assert f"build_dags(shard={k}," in (ROOT / path).read_text(), path


def test_each_chart_dag_is_built_by_one_file_the_one_its_slug_names(chart_db):
    built = _chart_dags_by_file()
    counts = Counter(dag_id for dag_ids in built.values() for dag_id in dag_ids)
    assert counts == Counter({f"chart_sync__{slug}": 1 for slug, *_ in ROWS})
    for slug, *_ in ROWS:
        assert f"chart_sync__{slug}" in built[settings.chart_dag_file(slug)], slug
    assert len({settings.chart_dag_shard(slug) for slug, *_ in ROWS}) > 1  # the rows do spread


def test_a_new_schedule_changes_one_file_only(chart_db):
    before = _chart_dags_by_file()
    schedules.add_schedule(chart_db, _new_chart(chart_db, "chart-new"), today=date(2026, 11, 24))
    after = _chart_dags_by_file()
    assert {path for path in after if after[path] != before[path]} == {settings.chart_dag_file("chart-new")}


def _new_chart(engine, slug):
    with engine.begin() as conn:
        conn.execute(insert(chart).values(slug=slug, name=slug.title(), platform="spotify", frequency="daily",
                                          created_at=datetime.now(UTC)))
    return next(r for r in _charts(engine) if r.slug == slug)


def test_parsing_context_builds_only_the_requested_dag(chart_db, monkeypatch):
    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", "chart_sync__chart-weekly")
    assert {d for d in _dagbag().dag_ids if d.startswith("chart_sync__")} == {"chart_sync__chart-weekly"}
    built = _chart_dags_by_file()  # the DAG's own file builds it; every other file builds nothing
    assert {path: ids for path, ids in built.items() if ids} == {
        settings.chart_dag_file("chart-weekly"): {"chart_sync__chart-weekly"}}


def test_chart_db_outage_keeps_the_last_known_dags(chart_db, monkeypatch, tmp_path):
    first = set(_dagbag().dag_ids)
    snapshots = sorted(tmp_path.glob("snapshot-*.json"))
    assert len(snapshots) == settings.CHART_DAG_SHARDS  # one a shard, empty ones too
    monkeypatch.setenv("AIRFLOW_CONN_CHART_DB", json.dumps({"conn_type": "sqlite",
                                                             "host": str(tmp_path / "missing" / "x.db")}))
    bag = _dagbag()
    assert set(bag.dag_ids) == first
    assert "config-error" in bag.dags["chart_sync__chart-broken"].tags  # the bad row still hits only its chart,
    assert bag.dags["chart_sync__chart-weekly"].timetable.expression == "0 0 * * FRI"  # not its shard's others
    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", "chart_sync__chart-monthly")
    assert {d for d in _dagbag().dag_ids if d.startswith("chart_sync__")} == {"chart_sync__chart-monthly"}


def test_quality_check_dag_is_daily_one_common_sql_task_per_check_and_passes_a_clean_warehouse(chart_db):
    import msgspec
    from airflow.providers.common.sql.operators.sql import SQLTableCheckOperator
    from airflow.serialization.serialized_objects import DagSerialization

    from chartsync.builders.callbacks import on_task_failure
    from chartsync.builders.quality import CHECKS

    dag = _dagbag("dags/chart_quality.py").dags[settings.QUALITY_CHECK_DAG_ID]
    assert dag.catchup is False and dag.timetable.expression == "0 5 * * *"
    assert "quality" in dag.tags and dag.is_paused_upon_creation is False
    # serialized and framed as a parsing process sends it to the dag-processor (msgpack: plain values only)
    msgspec.msgpack.encode(DagSerialization.to_dict(dag))
    assert sorted(t.task_id for t in dag.tasks) == sorted(c.name for c in CHECKS)
    for task in dag.tasks:
        assert isinstance(task, SQLTableCheckOperator), task.task_id
        assert (task.conn_id, task.retry_on_failure, task.pool) == (settings.CHART_DB_CONN_ID, False, "default_pool")
        assert task.on_failure_callback in (on_task_failure, [on_task_failure])  # the alert path of every DAG
        assert list(task.checks) == [task.task_id]  # the failure names the check: task id and check name
        task.execute({})  # the fixture's warehouse (schedules, no rankings yet) through the sqlite provider's hook
