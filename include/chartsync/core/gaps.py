"""Gaps and coverage as values: a chart's history window, what the calendar and the API expect in
it, a gap range and the backfill that heals it. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from chartsync.core import calendar as freqs
from chartsync.core.schedule import ScheduleConfig, dag_id_for
from chartsync.core.timestamps import midnight

REPROCESS = "completed"  # a run that succeeded but left no data (rows deleted later) must run again
BACKFILL_FREQUENCIES = ("daily", "weekly", "monthly")  # where a period maps to one backfill date


@dataclass(frozen=True)
class GapRange:
    chart_id: int
    slug: str
    start: date
    end: date
    periods: int

    @property
    def dag_id(self) -> str:
        return dag_id_for(self.slug)

    @property
    def backfill_command(self) -> str:
        return (f"airflow backfill create --dag-id {self.dag_id} --from-date {self.start} "
                f"--to-date {self.end} --reprocess-behavior {REPROCESS}")


@dataclass(frozen=True)
class PeriodSources:
    """What the calendar and the API say about one chart's window."""

    chart_id: int
    slug: str
    window: tuple[date, date]
    calendar: frozenset[date]
    api: frozenset[date] | None  # None: the API could not be asked

    @property
    def expected(self) -> frozenset[date]:
        return self.api if self.api else self.calendar

    @property
    def calendar_only(self) -> list[date]:
        return sorted(self.calendar - self.api) if self.api else []

    @property
    def api_only(self) -> list[date]:
        return sorted(self.api - self.calendar) if self.api else []


@dataclass(frozen=True)
class HealResult:
    slug: str
    dag_id: str
    start: date | None
    end: date | None
    status: str  # created, already-running, nothing-to-heal, dag-not-parsed, unsupported
    backfill_id: int | None
    message: str


def history_window(config: ScheduleConfig, today: date) -> tuple[date, date]:
    """[first, last] period starts a schedule is responsible for, as of ``today``."""
    calendar = config.period_frequency
    last = freqs.latest_complete_period(calendar, midnight(today),
                                        config.weekday).start
    first = config.history_start if config.sync_historical_data else freqs.align(
        calendar, config.created_on, config.weekday)
    return first, last


def period_sources(config: ScheduleConfig, api_dates: list[str] | None, today: date) -> PeriodSources:
    first, last = history_window(config, today)
    calendar = frozenset(p.start for p in freqs.periods_between(config.period_frequency, first, last, config.weekday))
    api = None
    if api_dates is not None:
        api = frozenset(d for d in (date.fromisoformat(a[:10]) for a in api_dates) if first <= d <= last)
    return PeriodSources(config.chart_id, config.slug, (first, last), calendar, api)
