"""The Soundcharts quota as every door shows it: where it went (``report``: the summary of ``services.quota``
with the charts that spent most) and what work would cost (``estimate``: periods of many charts against the
quota last read and the reserve).

Reads only: nothing here calls the API (``services.quota.refresh`` does, for free), and the CLI reads it
without loading Airflow.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from chartsync import settings
from chartsync.core import quota as rules
from chartsync.core.quota import Estimate, QuotaSummary
from chartsync.services import quota
from chartsync.store import pages
from chartsync.store import quota as quota_store

TOP_SPENDERS = 10
NEVER_SEEN = "never seen"


@dataclass(frozen=True)
class ChartSpend:
    chart_id: int | None  # None: calls tied to no chart (track metadata, audience, the chart import)
    slug: str | None
    calls: int


@dataclass(frozen=True)
class QuotaReport:
    summary: QuotaSummary
    charts: list[ChartSpend]  # the last 30 UTC days, most first

    @property
    def state(self) -> str:
        """The quota in plain words: never seen, below the reserve (and what that means), or fine."""
        s = self.summary
        if s.remaining is None:
            return NEVER_SEEN
        if rules.below_reserve(s.remaining, s.reserve):
            return f"below the reserve of {s.reserve:,}: history waits, the newest periods go on"
        return f"above the reserve of {s.reserve:,}"

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe: the summary's keys, ``state`` and ``charts`` (slug and calls, the last 30 days)."""
        return self.summary.as_dict() | {"state": self.state, "charts": [asdict(c) for c in self.charts]}


def report(engine: Engine, now: datetime | None = None, top: int = TOP_SPENDERS) -> QuotaReport:
    """The quota summary and the ``top`` charts by calls spent in the summary's 30-day window (the calls tied
    to no chart among them, as one row without a slug)."""
    now = now or datetime.now(UTC)
    summary = quota_summary(engine, now)
    spent = quota_store.spent_by_chart(engine, _window_start(now))
    slugs = pages.chart_slugs(engine, [c for c in spent if c is not None])
    ranked = sorted(spent.items(), key=lambda item: (-item[1], slugs.get(item[0]) or ""))[:top]
    return QuotaReport(summary, [ChartSpend(chart_id, slugs.get(chart_id), calls) for chart_id, calls in ranked])


def quota_summary(engine: Engine, now: datetime | None = None) -> QuotaSummary:
    """``services.quota.summary``: the latest reading, the calls of today's UTC day and of the last 30 UTC days
    (today included), the burn rate and the run-out date."""
    return quota.summary(engine, now)


def _window_start(now: datetime) -> date:
    # the summary's window: the last 30 UTC days, today included
    return now.astimezone(UTC).date() - timedelta(days=rules.BURN_WINDOW_DAYS - 1)


def estimate(engine: Engine, periods_by_chart: dict[int, int]) -> Estimate:
    """What syncing these periods of these charts would cost (periods x pages, pages from each chart's size)
    and leave of the quota last read, with the reserve's warning."""
    calls = sum(rules.estimate_calls(periods, quota_store.chart_size(engine, chart_id))
                for chart_id, periods in periods_by_chart.items())
    latest = quota_store.latest_reading(engine)
    return rules.estimate(calls, latest.remaining if latest else None, settings.quota_reserve())


def describe(found: Estimate, *, with_warning: bool = True) -> str:
    """An estimate in one line, as the doors print it: the calls beside the quota left, and any warning."""
    left = "the quota left is not known yet" if found.remaining is None else \
        f"{found.remaining:,} left, leaves {found.leaves:,} (reserve {found.reserve:,})"
    warning = f". Warning: {found.warning}" if found.warning and with_warning else ""
    return f"about {found.calls:,} API calls; {left}{warning}"
