"""The chart catalogue: import from Soundcharts, and a weekly chart's publication weekday."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine

from chartsync.services import quota
from chartsync.soundcharts.client import SoundchartsClient
from chartsync.soundcharts.errors import SoundchartsError
from chartsync.soundcharts.models import parse_atom
from chartsync.store import charts as chart_store
from chartsync.store.charts import ChartNotFound, get_chart

__all__ = ["ChartNotFound", "get_chart", "import_charts", "learn_publication_weekday", "weekday_or_none"]


def import_charts(engine: Engine, client: SoundchartsClient, platform: str,
                  country_code: str | None = None) -> tuple[int, int]:
    """Insert new charts of a platform and refresh changed ones; returns (created, updated)."""
    before = client.request_count
    try:
        infos = client.charts_by_platform(platform, country_code)
    finally:  # the catalogue's calls are tied to no chart
        quota.record(engine, client, calls=client.request_count - before)
    return chart_store.upsert_charts(engine, (
        (info.slug, {"name": info.name, "platform": info.platform or platform, "frequency": info.frequency,
                     "country_code": info.country_code, "max_results": info.max_results})
        for info in infos), datetime.now(UTC))


def learn_publication_weekday(engine: Engine, client: SoundchartsClient, chart_row) -> int | None:
    """The weekday a weekly chart is published on, from its newest available ranking (cached on the chart)."""
    if chart_row.publication_weekday is not None:
        return chart_row.publication_weekday
    before = client.request_count
    try:
        dates = client.available_rankings(chart_row.slug, newest_only=True)
    finally:
        quota.record(engine, client, chart_id=chart_row.id, calls=client.request_count - before)
    if not dates:
        return None
    weekday = parse_atom(dates[0]).weekday()
    chart_store.set_publication_weekday(engine, chart_row.id, weekday)
    return weekday


def weekday_or_none(engine: Engine, chart_row) -> int | None:
    """``learn_publication_weekday``, or unknown (the Monday anchor) when the API cannot tell."""
    try:
        return learn_publication_weekday(engine, SoundchartsClient(), chart_row)
    except SoundchartsError:
        return None
