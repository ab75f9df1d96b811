"""The data quality of stored rankings as the pages, the REST API and the CLI show it: a schedule's
summary and flagged rankings, one ranking's checks in words, rankings clean and flagged by period.

The checks themselves run when a ranking is stored (``core.quality``, thresholds in ``settings``);
the SQL is ``store.quality_reports``. Each flag is explained with the measure that raised it
("short: 143 of 200 entries"), the same words through every door.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import Engine

from chartsync import settings
from chartsync.core import periods
from chartsync.core.paging import Page, PageRequest
from chartsync.core.quality import RankingQuality
from chartsync.store import quality_reports as store
from chartsync.store.quality_reports import ChartQuality, QualityRow
from chartsync.store.schedules import existing_row, row_of_slug  # not services.schedules: no Airflow to load

FLAGGED, CLEAN, NOT_CHECKED = "flagged", "clean", "not-checked"
FLAG_LABELS = {"short": "fewer entries than published", "gaps": "positions missing",
               "missing_streams": "entries without streams", "churn": "unusually many new entries",
               "previous_mismatch": "previous positions contradict the previous period"}


def percent(share: float | None) -> str:
    if share is None:
        return "—"
    return f"{share * 100:.1f}".removesuffix(".0") + "%"


# -- a ranking's checks in words ---------------------------------------------------------------------------
@dataclass(frozen=True)
class FlagNote:
    flag: str
    text: str  # the measure that raised it

    def __str__(self) -> str:
        return f"{self.flag}: {self.text}"


@dataclass(frozen=True)
class Measure:
    """One check's measure on the ranking page: what it is, its value in words, its flag if raised."""

    label: str
    text: str
    flag: str
    raised: bool


def _flag_text(row: RankingQuality, flag: str) -> str:
    if flag == "short":
        return f"{row.entry_count} of {row.expected_count} entries" if row.expected_count else \
            f"{row.entry_count} entries"
    if flag == "gaps":
        return f"{row.missing_positions} position{'s' if row.missing_positions != 1 else ''} missing"
    if flag == "missing_streams":
        return (f"{percent(row.no_streams_share)} of entries without streams "
                f"(at most {percent(settings.QUALITY_MAX_NO_STREAMS_SHARE)} expected)")
    if flag == "churn":
        return f"{percent(row.new_share)} new entries, usually {percent(row.usual_new_share)}"
    if flag == "previous_mismatch":
        return (f"{row.previous_mismatches} of {row.previous_checked} previous positions contradict "
                f"the previous period")
    return FLAG_LABELS.get(flag, flag)


def explain(row: RankingQuality) -> list[FlagNote]:
    """Each flag of the ranking with the measure that raised it."""
    return [FlagNote(flag, _flag_text(row, flag)) for flag in row.flags]


def measures_of(row: RankingQuality) -> list[Measure]:
    """Every check's measure, raised or not (a measure the check could not take says why)."""
    raised = set(row.flags)
    expected = f"{row.entry_count} of {row.expected_count}" if row.expected_count else \
        f"{row.entry_count} (no published size)"
    gaps = "none: positions 1 to the last are all there" if not row.missing_positions else \
        f"{row.missing_positions} missing"
    streams = "not measured (the platform's entries carry no streams)" if row.no_streams_share is None else \
        f"{percent(row.no_streams_share)} of entries"
    churn = f"{percent(row.new_share)} of entries" + (
        f", usually {percent(row.usual_new_share)}" if row.usual_new_share is not None
        else " (too little history to judge)")
    previous = "not measured (no previous period stored)" if row.previous_mismatches is None else \
        f"{row.previous_mismatches} of {row.previous_checked} contradict the previous period"
    return [Measure("Entries", expected, "short", "short" in raised),
            Measure("Missing positions", gaps, "gaps", "gaps" in raised),
            Measure("Without streams", streams, "missing_streams", "missing_streams" in raised),
            Measure("New entries", churn, "churn", "churn" in raised),
            Measure("Previous positions", previous, "previous_mismatch", "previous_mismatch" in raised)]


@dataclass(frozen=True)
class StoredRankingQuality:
    """One stored ranking's quality: flagged, clean, or not checked (stored before the checks existed)."""

    chart_id: int
    period: date
    status: str
    stored: QualityRow | None  # the stored measures

    @property
    def checks(self) -> RankingQuality | None:
        return self.stored.checks if self.stored else None

    @property
    def flags(self) -> list[str]:
        return list(self.checks.flags) if self.checks else []

    @property
    def notes(self) -> list[FlagNote]:
        return explain(self.checks) if self.checks else []

    @property
    def measures(self) -> list[Measure]:
        return measures_of(self.checks) if self.checks else []

    @property
    def ranking_id(self) -> int | None:
        return self.stored.ranking_id if self.stored else None

    @property
    def checked_at(self) -> datetime | None:
        return self.stored.checked_at if self.stored else None


def _quality(row: QualityRow) -> StoredRankingQuality:
    return StoredRankingQuality(row.chart_id, row.period, FLAGGED if row.flagged else CLEAN, row)


def ranking_quality(engine: Engine, chart_id: int, period: date) -> StoredRankingQuality:
    row = store.ranking_quality(engine, chart_id, period)
    return StoredRankingQuality(chart_id, period, NOT_CHECKED, None) if row is None else _quality(row)


# -- a schedule --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ScheduleQuality:
    """A schedule's summary (rankings stored, checked, flagged, per flag) and a page of its flagged rankings."""

    schedule_id: int
    chart_id: int
    slug: str
    summary: ChartQuality
    rankings: Page[StoredRankingQuality]

    @property
    def unchecked(self) -> int:
        return self.summary.rankings_stored - self.summary.rankings_checked


def _schedule_quality(engine: Engine, row, flag: str | None, paging: PageRequest) -> ScheduleQuality:
    if flag is not None and flag not in settings.QUALITY_FLAGS:
        raise ValueError(f"flag must be one of {', '.join(settings.QUALITY_FLAGS)}")
    page = store.flagged_rankings(engine, row.chart_id, flag=flag, paging=paging)
    return ScheduleQuality(row.id, row.chart_id, row.slug, store.chart_quality(engine, row.chart_id),
                           Page([_quality(r) for r in page.items], page.total, page.limit, page.offset))


def schedule_quality(engine: Engine, schedule_id: int, *, flag: str | None = None,
                     paging: PageRequest = PageRequest(10)) -> ScheduleQuality:
    """The quality of a schedule's chart and its flagged rankings, newest first; ScheduleNotFound."""
    return _schedule_quality(engine, existing_row(engine, schedule_id), flag, paging)


def slug_quality(engine: Engine, slug: str, *, flag: str | None = None,
                 paging: PageRequest = PageRequest(10)) -> ScheduleQuality:
    """``schedule_quality`` of the chart ``slug``; ChartNotFound or ScheduleNotFound."""
    return _schedule_quality(engine, row_of_slug(engine, slug), flag, paging)


# -- by period ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PeriodBuckets:
    """Rankings by bucket of periods (``size``: day, week or month), oldest first: clean, flagged, not checked."""

    size: str
    buckets: list[tuple[date, list[float]]]

    @property
    def checked(self) -> int:
        return int(sum(clean + flagged for _, (clean, flagged, _unchecked) in self.buckets))

    @property
    def flagged(self) -> int:
        return int(sum(flagged for _, (_clean, flagged, _unchecked) in self.buckets))


def quality_by_period(engine: Engine, days: int, *, chart_id: int | None = None,
                      now: datetime | None = None) -> PeriodBuckets:
    """The rankings of the periods of the last ``days`` days (one chart's, or every chart's), by day, week
    or month (by the window)."""
    now = now or datetime.now(UTC)
    last, first = now.date(), now.date() - timedelta(days=days - 1)
    size = periods.bucket_size(days)
    rows = store.quality_by_period(engine, first, last, chart_id)
    return PeriodBuckets(size, periods.sum_by_bucket(((r.period, [r.clean, r.flagged, r.unchecked]) for r in rows),
                                                     size))
