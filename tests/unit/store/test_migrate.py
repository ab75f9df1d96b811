"""chartsync.store.migrate: the chart DB's migrations go forward and back (an upgrade's rollback)."""

from __future__ import annotations

from sqlalchemy import create_engine, inspect

from chartsync.store.migrate import current_revision, downgrade, upgrade


def test_a_downgrade_undoes_the_newest_migration_and_an_upgrade_redoes_it(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'chart.db'}")
    upgrade(engine)
    head = current_revision(engine)
    before = set(inspect(engine).get_table_names())
    downgrade(engine, f"{int(head) - 1:04d}")
    assert current_revision(engine) == f"{int(head) - 1:04d}"
    assert set(inspect(engine).get_table_names()) < before  # the newest migration's table is gone
    upgrade(engine)
    assert current_revision(engine) == head and set(inspect(engine).get_table_names()) == before


def test_a_downgrade_to_base_leaves_no_chart_table(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'chart.db'}")
    upgrade(engine)
    downgrade(engine, "base")
    assert current_revision(engine) is None
    assert not {"chart", "ranking", "chart_sync_schedule"} & set(inspect(engine).get_table_names())
