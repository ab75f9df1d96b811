"""Gaps and coverage as values: a chart's history window, what the calendar and the API expect in
it, a gap range and the backfill that heals it, coverage. Pure.

One definition of each, used by every door:

- **expected periods** of a chart: the periods of its frequency's calendar in its history window
  (``history_window``), except those the API said it did not publish, plus those the API published
  off the calendar (both stored in ``chart_expected_period`` by the gap audit). A period the audit
  has not seen yet (a new period, a chart never audited) is expected by the calendar alone.
- **coverage**: stored expected periods / expected periods of the window.
- **a gap**: an expected period with no stored ranking (never synced, failed, or deleted) that
  Airflow's own scheduling will not create: one behind the DAG's catchup front (``split_at_front``).
  A gap range is a run of consecutive expected periods that are all gaps.
- **waiting for the catchup**: an expected period with no stored ranking at or after the front:
  the scheduler creates its run in its turn, so a heal or a backfill there would race it for the
  same run (``dag_run_dag_id_logical_date_key``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta

from chartsync.core import calendar as freqs
from chartsync.core.schedule import ScheduleConfig, ScheduleError, dag_id_for
from chartsync.core.timestamps import midnight

# Airflow re-runs a *failed* run of a backfill's range and never a successful one, so a heal cannot
# re-run a stored period (``completed`` would, and turn its run into a backfill run).
REPROCESS = "failed"
BACKFILL_FREQUENCIES = ("daily", "weekly", "monthly")  # where a period maps to one backfill date


@dataclass(frozen=True)
class GapRange:
    chart_id: int
    slug: str
    start: date
    end: date
    periods: int
    heal: str | None = None  # "running" (its backfill is in Airflow) or "queued" (waits for the one before)
    backfill_id: int | None = None

    @property
    def dag_id(self) -> str:
        return dag_id_for(self.slug)

    @property
    def backfill_command(self) -> str:
        return (f"airflow backfill create --dag-id {self.dag_id} --from-date {self.start} "
                f"--to-date {self.end} --reprocess-behavior {REPROCESS}")


@dataclass(frozen=True)
class CatchupWait:
    """A chart's missing periods that Airflow's own scheduling creates in its turn: from the DAG's
    catchup front (the period of its next scheduled run) to the end of the window."""

    chart_id: int
    slug: str
    front: date  # the period of the DAG's next scheduled run
    first: date
    last: date
    periods: int

    @property
    def message(self) -> str:
        span = self.first.isoformat() if self.first == self.last else f"{self.first}..{self.last}"
        return (f"{self.periods} period(s) {span} wait for the catchup: Airflow's scheduler creates their "
                f"runs in turn (it is at {self.front})")


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
    status: str  # created, already-running, nothing-to-heal, dag-not-parsed, unsupported, refused
    backfill_id: int | None
    message: str
    queued: list[GapRange] = field(default_factory=list)  # ranges that start when the backfill completes
    waiting: CatchupWait | None = None  # what the heal left to the catchup


@dataclass(frozen=True)
class Window:
    """What the live gap query needs of one schedule: its history window and its calendar."""

    chart_id: int
    slug: str
    calendar: tuple[str, int | None]  # (frequency, publication weekday of weekly charts)
    first: date
    last: date


@dataclass(frozen=True)
class Run:
    """A run of consecutive expected periods of one chart that are all stored, or all gaps."""

    chart_id: int
    start: date
    end: date
    periods: int
    stored: bool


@dataclass(frozen=True)
class Coverage:
    chart_id: int
    window_start: date
    window_end: date
    expected_periods: int
    stored_periods: int
    calendar_only: list[str] = field(default_factory=list)  # the calendar expects, the API never published
    api_only: list[str] = field(default_factory=list)  # the API published off the calendar
    audited_at: datetime | None = None  # when the gap audit last asked the API (None: calendar only)

    @property
    def coverage_percent(self) -> float:
        if not self.expected_periods:
            return 100.0
        return round(100.0 * self.stored_periods / self.expected_periods, 2)

    @property
    def gap_periods(self) -> int:
        return self.expected_periods - self.stored_periods

    def record(self) -> dict:
        """What the API and the pages show of it."""
        return {"window_start": self.window_start, "window_end": self.window_end,
                "expected_periods": self.expected_periods, "stored_periods": self.stored_periods,
                "gap_periods": self.gap_periods, "coverage_percent": self.coverage_percent,
                "calendar_only": self.calendar_only, "api_only": self.api_only, "audited_at": self.audited_at}


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


def window_of(config: ScheduleConfig, today: date) -> Window:
    freq = config.period_frequency
    first, last = history_window(config, today)
    weekday = config.weekday if freq is freqs.Frequency.WEEKLY else None
    return Window(config.chart_id, config.slug, (freq.value, weekday), first, last)


def calendars(windows: Iterable[Window]) -> dict[tuple[str, int | None], list[date]]:
    """Every period start of each calendar the windows use, from the earliest first to the latest last."""
    spans: dict[tuple[str, int | None], tuple[date, date]] = {}
    for w in windows:
        lo, hi = spans.get(w.calendar, (w.first, w.last))
        spans[w.calendar] = (min(lo, w.first), max(hi, w.last))
    return {key: [p.start for p in freqs.periods_between(freqs.Frequency(key[0]), lo, hi, key[1])]
            for key, (lo, hi) in spans.items()}


def runs_of(chart_id: int, periods: Iterable[tuple[date, bool]]) -> list[Run]:
    """Consecutive (period, stored) pairs, in period order, merged into runs of the same kind."""
    runs: list[Run] = []
    for day, stored in periods:
        last = runs[-1] if runs else None
        if last is not None and last.stored == stored:
            runs[-1] = Run(chart_id, last.start, day, last.periods + 1, stored)
        else:
            runs.append(Run(chart_id, day, day, 1, stored))
    return runs


def coverage_of(window: Window, runs: Iterable[Run], calendar_only: list[str] | None = None,
                api_only: list[str] | None = None, audited_at: datetime | None = None) -> Coverage:
    runs = list(runs)
    return Coverage(window.chart_id, window.first, window.last, sum(r.periods for r in runs),
                    sum(r.periods for r in runs if r.stored), calendar_only or [], api_only or [], audited_at)


def gaps_of(window: Window, runs: Iterable[Run]) -> list[GapRange]:
    return [GapRange(window.chart_id, window.slug, r.start, r.end, r.periods) for r in runs if not r.stored]


def split_at_front(window: Window, gaps: list[GapRange], front: date | None
                   ) -> tuple[list[GapRange], CatchupWait | None]:
    """The window's missing ranges split at the DAG's catchup front: the gaps behind it (Airflow's
    scheduling will not create them: heal them), and what waits for the catchup from it on.

    ``front``: the period of the DAG's next scheduled run; None (no next run, or a DAG Airflow does
    not know, which no backfill can reach) leaves every range a gap. A range across the front is cut
    there; its periods are consecutive periods of the calendar (a period the API skipped ends a
    range), so the calendar counts each part.
    """
    if front is None or front > window.last:
        return gaps, None
    freq, weekday = freqs.Frequency(window.calendar[0]), window.calendar[1]
    behind, ahead = [], []
    for gap in gaps:
        if gap.end < front:
            behind.append(gap)
        elif gap.start >= front:
            ahead.append(gap)
        else:
            before = freqs.periods_between(freq, gap.start, front - timedelta(days=1), weekday)
            after = freqs.periods_between(freq, front, gap.end, weekday)
            behind.append(replace(gap, end=before[-1].start, periods=len(before)))
            ahead.append(replace(gap, start=after[0].start, periods=len(after)))
    if not ahead:
        return behind, None
    return behind, CatchupWait(window.chart_id, window.slug, front, ahead[0].start, ahead[-1].end,
                               sum(g.periods for g in ahead))


def triggerable_period(config: ScheduleConfig, period: date, today: date, *, snap: bool = False) -> date:
    """The period a manual run may sync: a period start of the chart's calendar from the DAG's first
    period (``ScheduleConfig.dag_start``) to the latest complete one, else ScheduleError on ``period``
    naming the nearest valid periods.

    No silent snapping: a day inside a period is refused unless ``snap`` asks for that period. A run
    before the DAG's start would be a green run that synced nothing (Airflow creates no task there),
    one after the latest complete period a period not published yet.
    """
    freq, weekday = config.period_frequency, config.weekday
    first, last = config.dag_start, history_window(config, today)[1]
    start = freqs.align(freq, period, weekday)
    name = f"{config.frequency.value} schedule" if freq is config.frequency else f"{freq.value} chart"
    if start < first:
        raise ScheduleError("period", f"{period} is before the first period of this {name}'s DAG: the "
                                      f"earliest period is {first}")
    if period > last:
        raise ScheduleError("period", f"{period} is not a complete period yet: the latest period is {last}")
    if start != period and not snap:
        following = freqs.next_start(freq, start)
        nearest = ", ".join(d.isoformat() for d in (start, following) if first <= d <= last)
        raise ScheduleError("period", f"{period} is not a period start of this {name}; nearest period(s): "
                                      f"{nearest} (or pass snap: true to sync the period {start})")
    return start


CATCHUP_MARGIN = 3  # periods from the front the scheduler may be creating while a manual run is made


def is_next_in_catchup(freq: freqs.Frequency, period: date, front: date) -> bool:
    """Whether the scheduler may be creating ``period``'s run right now: the catchup front's period
    or one of the next few (it creates one run per DAG a loop, so the front moves while a manual
    run is made). Beyond them, the scheduler finds a manual run where it arrives and passes over it."""
    ahead = front
    for _ in range(CATCHUP_MARGIN):
        ahead = freqs.next_start(freq, ahead)
    return front <= period < ahead
