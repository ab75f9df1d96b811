"""Reads of ``chart_ranking_quality`` (the soft checks of each stored ranking, written by the sync with
the ranking): a chart's quality summary, its flagged rankings, one ranking's row, rankings by period
and the rankings flagged since a time. What the schedule, ranking and stats pages, the REST API, the
CLI and the daily digest show, through ``services.quality``.

Every figure is one aggregate query. A flag is counted with a text match on the JSON list
(``'"short"'`` in ``["short", "gaps"]``): the same SQL on SQLite and PostgreSQL, and the flag names
are quoted, so none matches another.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import Engine, Text, case, cast, func, select
from sqlalchemy.sql.expression import ColumnElement

from chartsync.core.paging import Page, PageRequest
from chartsync.core.quality import RankingQuality
from chartsync.core.timestamps import as_utc
from chartsync.settings import QUALITY_FLAGS
from chartsync.store.tables import chart, chart_ranking, chart_ranking_quality, chart_sync_schedule

q = chart_ranking_quality.c


def has_flag(flag: str) -> ColumnElement:
    """The quality row names ``flag`` in its flags."""
    return cast(q.flags, Text).contains(f'"{flag}"', autoescape=True)


def _count(condition: ColumnElement):
    return func.sum(case((condition, 1), else_=0))


def _flag_counts(row) -> dict[str, int]:
    return {flag: int(getattr(row, f"n_{flag}") or 0) for flag in QUALITY_FLAGS}


def _per_flag() -> list:
    return [_count(has_flag(flag)).label(f"n_{flag}") for flag in QUALITY_FLAGS]


@dataclass(frozen=True)
class QualityRow:
    """One ranking's soft checks as ``chart_ranking_quality`` holds them: the core's measures, and where and
    when they were taken."""

    ranking_id: int
    chart_id: int
    period: date
    checks: RankingQuality
    checked_at: datetime

    @property
    def flagged(self) -> bool:
        return self.checks.flagged


def _row(r) -> QualityRow:
    names = set(r.flags or [])
    flags = tuple(f for f in QUALITY_FLAGS if f in names) + tuple(sorted(names - set(QUALITY_FLAGS)))
    checks = RankingQuality(r.entry_count, r.expected_count, r.missing_positions, r.no_streams_share, r.new_share,
                            r.usual_new_share, r.previous_checked, r.previous_mismatches, flags)
    return QualityRow(r.ranking_id, r.chart_id, r.period, checks, as_utc(r.checked_at))


# -- one chart -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ChartQuality:
    chart_id: int
    rankings_stored: int
    rankings_checked: int  # stored with their checks (rankings stored before the checks have none)
    rankings_flagged: int
    flag_counts: dict[str, int]  # rankings per flag, every flag of settings.QUALITY_FLAGS
    last_checked_at: datetime | None
    last_flagged_period: date | None


def chart_quality(engine: Engine, chart_id: int) -> ChartQuality:
    """A chart's rankings stored, checked and flagged, and how many carry each flag: one query."""
    stored = select(func.count()).where(chart_ranking.c.chart_id == chart_id).scalar_subquery()
    query = select(stored.label("stored"), func.count(q.ranking_id).label("checked"),
                   _count(q.flagged.is_(True)).label("flagged"), *_per_flag(),
                   func.max(q.checked_at).label("last_checked"),
                   func.max(case((q.flagged.is_(True), q.period))).label("last_flagged")
                   ).where(q.chart_id == chart_id)
    with engine.connect() as conn:
        r = conn.execute(query).one()
    return ChartQuality(chart_id, int(r.stored or 0), int(r.checked or 0), int(r.flagged or 0), _flag_counts(r),
                        as_utc(r.last_checked) if r.last_checked is not None else None, r.last_flagged)


def flagged_rankings(engine: Engine, chart_id: int, *, flag: str | None = None,
                     paging: PageRequest = PageRequest(10)) -> Page[QualityRow]:
    """A chart's flagged rankings (those with ``flag``, if given), newest period first."""
    conditions = [q.chart_id == chart_id, q.flagged.is_(True), *([has_flag(flag)] if flag else [])]
    with engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(chart_ranking_quality).where(*conditions)).scalar_one()
        rows = conn.execute(select(chart_ranking_quality).where(*conditions).order_by(q.period.desc())
                            .limit(paging.limit).offset(paging.offset)).all()
    return Page([_row(r) for r in rows], int(total), paging.limit, paging.offset)


def ranking_quality(engine: Engine, chart_id: int, period: date) -> QualityRow | None:
    """The checks of the chart's ranking of ``period``; None when it has none (stored before the checks)."""
    with engine.connect() as conn:
        r = conn.execute(select(chart_ranking_quality).where(q.chart_id == chart_id, q.period == period)).first()
    return _row(r) if r is not None else None


# -- by period, and since a time -----------------------------------------------------------------------------
@dataclass(frozen=True)
class PeriodQuality:
    """The rankings stored for one period date: clean, flagged, and stored without checks."""

    period: date
    stored: int
    checked: int
    flagged: int

    @property
    def clean(self) -> int:
        return self.checked - self.flagged

    @property
    def unchecked(self) -> int:
        return self.stored - self.checked


def quality_by_period(engine: Engine, first: date, last: date, chart_id: int | None = None) -> list[PeriodQuality]:
    """Per period date from ``first`` to ``last`` (oldest first) of one chart or every chart: rankings stored,
    checked and flagged; one GROUP BY over the rankings and their checks."""
    rk = chart_ranking.c
    query = (select(rk.period, func.count().label("stored"), func.count(q.ranking_id).label("checked"),
                    _count(q.flagged.is_(True)).label("flagged"))
             .select_from(chart_ranking.outerjoin(chart_ranking_quality, q.ranking_id == rk.id))
             .where(rk.period >= first, rk.period <= last, *([rk.chart_id == chart_id] if chart_id is not None else []))
             .group_by(rk.period).order_by(rk.period))
    with engine.connect() as conn:
        return [PeriodQuality(r.period, int(r.stored), int(r.checked), int(r.flagged or 0))
                for r in conn.execute(query)]


@dataclass(frozen=True)
class ChartFlagged:
    """One chart's rankings flagged since a time (the digest's lines)."""

    chart_id: int
    slug: str
    name: str
    schedule_id: int | None
    rankings_flagged: int
    flag_counts: dict[str, int]


def flagged_since(engine: Engine, since: datetime) -> list[ChartFlagged]:
    """Per chart, its rankings checked since ``since`` and flagged, most flagged first: one GROUP BY."""
    s = chart_sync_schedule.c
    query = (select(q.chart_id, chart.c.slug, chart.c.name, s.id.label("schedule_id"),
                    func.count().label("flagged"), *_per_flag())
             .select_from(chart_ranking_quality.join(chart, chart.c.id == q.chart_id)
                          .outerjoin(chart_sync_schedule, s.chart_id == q.chart_id))
             .where(q.flagged.is_(True), q.checked_at >= since)
             .group_by(q.chart_id, chart.c.slug, chart.c.name, s.id)
             .order_by(func.count().desc(), chart.c.slug))
    with engine.connect() as conn:
        return [ChartFlagged(r.chart_id, r.slug, r.name, r.schedule_id, int(r.flagged), _flag_counts(r))
                for r in conn.execute(query)]
