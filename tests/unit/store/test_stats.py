"""The overdue rule's SQL twin (it agrees with the pure rule) and the execution aggregates on a small SQLite DB."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import create_engine, insert, select

from chartsync.core import rules
from chartsync.store import stats
from chartsync.store.tables import chart, chart_sync_execution, chart_sync_schedule, metadata

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)


# -- SQL ---------------------------------------------------------------------------------------------
@pytest.fixture
def engine(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'chart.db'}")
    metadata.create_all(engine)
    return engine


CASES = [  # (frequency, hours, cron, active, created days ago, last success hours ago or None)
    ("daily", None, None, True, 100, 30),
    ("daily", None, None, True, 100, 40),
    ("daily", None, None, False, 100, 400),
    ("daily", None, None, True, 1, None),
    ("daily", None, None, True, 3, None),
    ("weekly", None, None, True, 100, 24 * 7),
    ("weekly", None, None, True, 100, 24 * 9),
    ("monthly", None, None, True, 100, 24 * 32),
    ("monthly", None, None, True, 100, 24 * 34),
    ("custom", 4, None, True, 100, 7),
    ("custom", 4, None, True, 100, 9),
    ("cron", None, "0 6 * * *", True, 100, 47),
    ("cron", None, "0 6 * * *", True, 100, 49),
    ("cron", None, "0 */4 * * *", True, 100, 2),
]


def seed(engine) -> list[int]:
    ids = []
    with engine.begin() as conn:
        for i, (freq, hours, cron, active, created_days, last_hours) in enumerate(CASES):
            chart_id = conn.execute(insert(chart).values(
                slug=f"c{i}", name=f"C{i}", platform="spotify" if i % 2 else "deezer", frequency="daily",
                created_at=NOW)).inserted_primary_key[0]
            created = NOW - timedelta(days=created_days)
            conn.execute(insert(chart_sync_schedule).values(
                chart_id=chart_id, is_active=active, sync_frequency=freq, custom_interval_hours=hours,
                cron_expression=cron, history_start=date(2025, 6, 1), created_at=created, updated_at=created))
            if last_hours is not None:
                done = NOW - timedelta(hours=last_hours)
                for status, offset, duration in (("failed", 3, 10.0), ("success", 0, 20.0)):
                    conn.execute(insert(chart_sync_execution).values(
                        chart_id=chart_id, dag_id=f"chart_sync__c{i}", run_id=f"r{i}-{status}", period=date(2026, 6, 1),
                        status=status, started_at=done - timedelta(hours=offset, seconds=duration),
                        completed_at=done - timedelta(hours=offset), duration_seconds=duration))
            ids.append(chart_id)
    return ids


def test_sql_overdue_agrees_with_the_pure_rule(engine):
    ids = seed(engine)
    last_ok = stats.last_success_subquery()
    s = chart_sync_schedule
    with engine.connect() as conn:
        clause = stats.overdue_clause(last_ok.c.last_success_at, NOW, stats.cron_graces(conn))
        rows = conn.execute(
            select(s.c.chart_id, s.c.is_active, s.c.sync_frequency, s.c.custom_interval_hours, s.c.cron_expression,
                   s.c.created_at, last_ok.c.last_success_at, clause.label("overdue"))
            .select_from(s.outerjoin(last_ok, last_ok.c.chart_id == s.c.chart_id)).order_by(s.c.chart_id)
        ).all()
    assert [r.chart_id for r in rows] == ids
    pure = [rules.is_overdue(is_active=r.is_active, frequency=r.sync_frequency, last_success_at=r.last_success_at,
                             created_at=r.created_at, now=NOW, custom_interval_hours=r.custom_interval_hours,
                             cron_expression=r.cron_expression) for r in rows]
    assert [bool(r.overdue) for r in rows] == pure
    assert pure == [False, True, False, False, True, False, True, False, True, False, True, False, True, False]


def test_execution_stats_and_overall_are_aggregated_by_the_database(engine):
    ids = seed(engine)
    per_chart = stats.execution_stats(engine, ids[:2], now=NOW)
    assert set(per_chart) == set(ids[:2])
    first = per_chart[ids[0]]
    assert (first.total_executions, first.successful_executions, first.failed_executions) == (2, 1, 1)
    assert first.success_rate == 0.5
    assert first.average_duration_seconds == 15.0
    assert first.last_status == "success"
    assert first.freshness_seconds == 30 * 3600
    assert stats.execution_stats(engine, [], now=NOW) == {}

    overall = stats.overall_stats(engine, now=NOW)
    with_history = sum(1 for case in CASES if case[5] is not None)
    assert overall.schedules == len(CASES)
    assert overall.active_schedules == sum(1 for case in CASES if case[3])
    assert overall.overdue_schedules == 6
    assert overall.executions.total_executions == 2 * with_history
    assert overall.executions.success_rate == 0.5
    assert overall.executions.freshness_seconds == 2 * 3600

    recent = stats.overall_stats(engine, now=NOW, since=NOW - timedelta(hours=10))
    assert recent.executions.total_executions == 4  # the custom 7 h and cron 2 h charts: 2 each, after the cut
