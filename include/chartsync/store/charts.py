"""The ``chart`` table: the catalogue of charts."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import Engine, insert, select, update

from chartsync.store.tables import chart


class ChartNotFound(LookupError):
    pass


def get_chart(engine: Engine, *, slug: str | None = None, chart_id: int | None = None):
    query = select(chart).where(chart.c.slug == slug) if slug is not None else select(chart).where(
        chart.c.id == chart_id)
    with engine.connect() as conn:
        row = conn.execute(query).first()
    if row is None:
        raise ChartNotFound(f"unknown chart {slug if slug is not None else chart_id!r}"
                            " (import it first: chartsync charts import --platform P)")
    return row


def upsert_charts(engine: Engine, charts: Iterable[tuple[str, dict]], now: datetime) -> tuple[int, int]:
    """Insert new charts (slug, values) and refresh changed ones; returns (created, updated)."""
    charts = list(charts)
    created = updated = 0
    with engine.begin() as conn:
        existing = {row.slug: row for row in conn.execute(
            select(chart).where(chart.c.slug.in_([slug for slug, _ in charts])))}
        for slug, values in charts:
            row = existing.get(slug)
            if row is None:
                conn.execute(insert(chart).values(slug=slug, created_at=now, **values))
                created += 1
            elif any(getattr(row, k) != v for k, v in values.items()):
                conn.execute(update(chart).where(chart.c.id == row.id).values(**values))
                updated += 1
    return created, updated


def set_publication_weekday(engine: Engine, chart_id: int, weekday: int) -> None:
    with engine.begin() as conn:
        conn.execute(update(chart).where(chart.c.id == chart_id).values(publication_weekday=weekday))
