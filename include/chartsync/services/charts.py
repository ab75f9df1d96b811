"""The chart catalogue: import from Soundcharts, look up, publication weekday."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine, insert, select, update

from chartsync.store.tables import chart
from chartsync.soundcharts.client import SoundchartsClient, parse_atom


class ChartNotFound(LookupError):
    pass


def import_charts(engine: Engine, client: SoundchartsClient, platform: str,
                  country_code: str | None = None) -> tuple[int, int]:
    """Insert new charts of a platform and refresh changed ones; returns (created, updated)."""
    infos = client.charts_by_platform(platform, country_code)
    now = datetime.now(UTC)
    created = updated = 0
    with engine.begin() as conn:
        existing = {
            row.slug: row
            for row in conn.execute(select(chart).where(chart.c.slug.in_([i.slug for i in infos])))
        }
        for info in infos:
            values = {"name": info.name, "platform": info.platform or platform, "frequency": info.frequency,
                      "country_code": info.country_code, "max_results": info.max_results}
            row = existing.get(info.slug)
            if row is None:
                conn.execute(insert(chart).values(slug=info.slug, created_at=now, **values))
                created += 1
            elif any(getattr(row, k) != v for k, v in values.items()):
                conn.execute(update(chart).where(chart.c.id == row.id).values(**values))
                updated += 1
    return created, updated


def get_chart(engine: Engine, *, slug: str | None = None, chart_id: int | None = None):
    query = select(chart).where(chart.c.slug == slug) if slug is not None else select(chart).where(
        chart.c.id == chart_id)
    with engine.connect() as conn:
        row = conn.execute(query).first()
    if row is None:
        raise ChartNotFound(f"unknown chart {slug if slug is not None else chart_id!r}"
                            " (import it first: chartsync charts import --platform P)")
    return row


def learn_publication_weekday(engine: Engine, client: SoundchartsClient, chart_row) -> int | None:
    """The weekday a weekly chart is published on, from its newest available ranking (cached on the chart)."""
    if chart_row.publication_weekday is not None:
        return chart_row.publication_weekday
    dates = client.available_rankings(chart_row.slug, newest_only=True)
    if not dates:
        return None
    weekday = parse_atom(dates[0]).weekday()
    with engine.begin() as conn:
        conn.execute(update(chart).where(chart.c.id == chart_row.id).values(publication_weekday=weekday))
    return weekday
