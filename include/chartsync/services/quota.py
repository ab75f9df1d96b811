"""The Soundcharts API quota: record what the API said is left and what each use case spent, summarise it
(burn rate, run-out date), read it afresh from the free usage endpoint (the doors' estimates: services.budget).

``record`` is best-effort: the services that spend calls (sync, track metadata, audience, the chart import)
call it when they are done, success or failure, and a failure to record is logged, never raised: the
quota's bookkeeping must not fail the work it counts.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from chartsync import settings
from chartsync.core import quota as rules
from chartsync.core.quota import QuotaReading, QuotaSummary
from chartsync.store import quota as store

if TYPE_CHECKING:  # the client loads Airflow (the metrics seam): the chart DB's reads of the quota need it not
    from chartsync.soundcharts.client import SoundchartsClient

log = logging.getLogger(__name__)

RESPONSE, USAGE = "response", "usage"


def record(engine: Engine, client_or_reading: SoundchartsClient | QuotaReading | None, *,
           chart_id: int | None = None, calls: int = 0) -> bool:
    """Store the client's last reading (or the reading given) and ``calls`` spent on ``chart_id`` (None: no
    chart) today, in one write. Never raises: False (and a log line) when it could not be stored."""
    reading = client_or_reading if isinstance(client_or_reading, QuotaReading | None) \
        else getattr(client_or_reading, "quota", None)  # a client (a test's stand-in may have no quota)
    try:
        store.record(engine, reading, RESPONSE, chart_id=chart_id, calls=calls)
    except Exception:  # the bookkeeping never fails the work it counts
        log.warning("Soundcharts quota: could not record %d calls (chart %s) and the reading %s",
                    calls, chart_id, reading and reading.remaining, exc_info=True)
        return False
    return True


def refresh(engine: Engine, client: SoundchartsClient) -> QuotaReading:
    """Read the quota from the usage endpoint (it spends none) and store the reading."""
    reading = client.usage()
    store.record_reading(engine, reading, USAGE)
    return reading


def summary(engine: Engine, now: datetime | None = None) -> QuotaSummary:
    """The latest reading, the calls spent (today's UTC day as ``spent_24h``: calls are counted per UTC day;
    the last 30 UTC days, today included, as ``spent_30d``), the burn rate and the run-out date."""
    today = (now or datetime.now(UTC)).astimezone(UTC).date()
    window_start = today - timedelta(days=rules.BURN_WINDOW_DAYS - 1)
    first = store.first_day_since(engine, window_start)
    return rules.summarize(
        store.latest_reading(engine),
        spent_24h=store.spent_since(engine, today),
        spent_30d=store.spent_since(engine, window_start),
        days_observed=0 if first is None else (today - first).days + 1,
        reserve=settings.quota_reserve(),
        today=today,
    )
