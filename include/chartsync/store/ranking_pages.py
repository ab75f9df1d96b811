"""One chart's ranking for a period as the ranking page shows it: its entries sorted, filtered by trend,
searched and paged, with the stored periods before and after it (the read side; ``store.rankings`` writes
rankings).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import Engine, asc, desc, func, or_, select

from chartsync.core.paging import Page
from chartsync.core.trends import TRENDS
from chartsync.store.tables import chart, chart_ranking, chart_ranking_entry, track

PAGE_SIZE = 100
SORTS = {
    "position": chart_ranking_entry.c.position,
    "previous": chart_ranking_entry.c.previous_position,
    "weeks": chart_ranking_entry.c.weeks_on_chart,
    "streams": chart_ranking_entry.c.streams,
    "track": track.c.name,
}


class RankingNotFound(LookupError):
    pass


@dataclass(frozen=True)
class EntryRow:
    position: int
    previous_position: int | None
    trend: str
    weeks_on_chart: int | None
    streams: int | None
    song_uuid: str
    track_name: str
    artists: str

    @property
    def movement(self) -> int | None:
        if self.previous_position is None:
            return None
        return self.previous_position - self.position


@dataclass(frozen=True)
class RankingPage:
    chart_id: int
    slug: str
    chart_name: str
    platform: str
    period: date
    fetched_at: datetime
    entry_count: int
    previous_period: date | None
    next_period: date | None
    trend_counts: dict[str, int]
    entry_page: Page[EntryRow]  # the entries after the filter and search, one page of them
    filters: dict = field(default_factory=dict)

    @property
    def entries(self) -> list[EntryRow]:
        return self.entry_page.items

    @property
    def matching(self) -> int:
        return self.entry_page.total

    @property
    def page(self) -> int:
        return self.entry_page.page

    @property
    def pages(self) -> int:
        return self.entry_page.pages


def ranking_page(engine: Engine, chart_id: int, period: date | None = None, *, sort: str = "position",
                 descending: bool = False, trend: str | None = None, search: str | None = None,
                 page: int = 1, page_size: int = PAGE_SIZE) -> RankingPage:
    """The ranking of ``period`` (default: the newest stored), sorted, filtered, searched and paged."""
    if sort not in SORTS:
        raise ValueError(f"sort must be one of {', '.join(SORTS)}")
    if trend is not None and trend not in TRENDS:
        raise ValueError(f"trend must be one of {', '.join(TRENDS)}")
    r, e = chart_ranking, chart_ranking_entry
    with engine.connect() as conn:
        head = conn.execute(select(chart.c.slug, chart.c.name, chart.c.platform).where(chart.c.id == chart_id)).first()
        if head is None:
            raise RankingNotFound(f"unknown chart {chart_id}")
        when = period or conn.execute(select(func.max(r.c.period)).where(r.c.chart_id == chart_id)).scalar()
        ranking = conn.execute(select(r).where(r.c.chart_id == chart_id, r.c.period == when)).first()
        if ranking is None:
            raise RankingNotFound(f"{head.slug} has no stored ranking for {when or 'any period'}")
        previous = conn.execute(select(func.max(r.c.period)).where(r.c.chart_id == chart_id, r.c.period < when)).scalar()
        following = conn.execute(select(func.min(r.c.period)).where(r.c.chart_id == chart_id, r.c.period > when)).scalar()
        counts = dict(conn.execute(select(e.c.trend, func.count()).where(e.c.ranking_id == ranking.id)
                                   .group_by(e.c.trend)).all())
        query = select(e, track.c.song_uuid, track.c.name.label("track_name"), track.c.credit_name,
                       track.c.artists).join(track, track.c.id == e.c.track_id).where(e.c.ranking_id == ranking.id)
        if trend:
            query = query.where(e.c.trend == trend)
        if search:
            pattern = f"%{search.strip().lower()}%"
            query = query.where(or_(func.lower(track.c.name).like(pattern),
                                    func.lower(func.coalesce(track.c.credit_name, "")).like(pattern)))
        matching = conn.execute(select(func.count()).select_from(query.subquery())).scalar()
        pages = max(1, -(-matching // page_size))
        page = min(max(1, page), pages)
        order = desc(SORTS[sort]) if descending else asc(SORTS[sort])
        rows = conn.execute(query.order_by(order, e.c.position).limit(page_size).offset((page - 1) * page_size))
        entries = [
            EntryRow(row.position, row.previous_position, row.trend, row.weeks_on_chart, row.streams,
                     row.song_uuid, row.track_name, _artists(row.artists, row.credit_name))
            for row in rows
        ]
    return RankingPage(
        chart_id=chart_id, slug=head.slug, chart_name=head.name, platform=head.platform, period=when,
        fetched_at=ranking.fetched_at, entry_count=ranking.entry_count, previous_period=previous,
        next_period=following, trend_counts={t: counts.get(t, 0) for t in TRENDS},
        entry_page=Page(entries, matching, page_size, (page - 1) * page_size),
        filters={"sort": sort, "descending": descending, "trend": trend, "search": search},
    )


def _artists(artists, credit_name: str | None) -> str:
    if artists:
        return ", ".join(a.get("name", "") for a in artists if isinstance(a, dict)) or (credit_name or "")
    return credit_name or ""
