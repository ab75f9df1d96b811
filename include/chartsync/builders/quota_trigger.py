"""The trigger a sync task defers to while it waits for the Soundcharts quota: it runs on the triggerer and
holds no worker slot (nor a ``soundcharts_api`` pool slot: the pool does not count deferred tasks).

Every ``settings.quota_recheck_seconds()`` it reads the quota from the usage endpoint (``services.quota.refresh``:
it spends no call, and the reading is recorded), and fires once what is left is enough for the waiting period:
some quota for the newest period, the reserve for history (fresh data first). A reading that shows the reserve
back also ends the quota episode (``services.alerts.quota_reading``: its "restored" alert, once).

The blocking work (connection lookups, HTTP, SQL) runs in a worker thread: the triggerer's event loop never
stalls. In the triggerer, and in ``airflow dags test`` (which runs triggers inline), connections are answered
by the Task SDK's supervisor channel, as for the Deadline Alerts' callbacks.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from chartsync import settings
from chartsync.core.quota import QuotaReading

log = logging.getLogger(__name__)


def quota_needed(history: bool, reserve: int) -> int:
    """What must be left for a waiting period to go on: some (the newest period), or the reserve (history)."""
    return max(reserve, 1) if history else 1


class QuotaTrigger(BaseTrigger):
    """Fires ``{"remaining": n, "seen_at": iso}`` once the quota is back for the period (see the module doc).

    ``recheck_seconds``: None reads ``settings.quota_recheck_seconds()`` where the trigger runs; tests pass less.
    """

    def __init__(self, *, history: bool, slug: str | None = None, period: str | None = None,
                 recheck_seconds: float | None = None) -> None:
        super().__init__()
        self.history = history
        self.slug = slug
        self.period = period
        self.recheck_seconds = recheck_seconds

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{type(self).__module__}.{type(self).__qualname__}",
                {"history": self.history, "slug": self.slug, "period": self.period,
                 "recheck_seconds": self.recheck_seconds})

    async def run(self) -> AsyncIterator[TriggerEvent]:
        interval = self.recheck_seconds if self.recheck_seconds is not None else settings.quota_recheck_seconds()
        while True:
            # the first reading one interval after the deferral, not at once: Airflow 3.3.2's scheduler fails a
            # try whose trigger fired before the scheduler saw the deferred process exit, if it has queued the
            # resumed task in the same loop (its resume-after-defer guard covers a scheduled task, not a
            # queued one); a busy scheduler's loop takes seconds
            await asyncio.sleep(interval)
            need = quota_needed(self.history, settings.quota_reserve())
            reading = await asyncio.to_thread(self.read_quota)
            if reading is not None and reading.remaining is not None and reading.remaining >= need:
                log.info("chart-sync: %s period %s: the quota is back (%s left, %s needed)", self.slug,
                         self.period or "latest", reading.remaining, need)
                yield TriggerEvent({"remaining": reading.remaining, "seen_at": reading.seen_at.isoformat()})
                return
            log.info("chart-sync: %s period %s waits for the quota (%s left, %s needed); reading it again in %s s",
                     self.slug, self.period or "latest", None if reading is None else reading.remaining, need,
                     interval)

    def read_quota(self) -> QuotaReading | None:
        """Read the quota (free), record it, and end the episode when the reserve is back; None when it could
        not be read (the next check tries again: a wait never fails for want of a reading)."""
        # deferred: the triggerer imports trigger classes by name; the client loads the http provider
        from chartsync.services import alerts, quota
        from chartsync.soundcharts.client import SoundchartsClient
        from chartsync.store.engine import chart_engine

        try:
            engine = chart_engine()
            reading = quota.refresh(engine, SoundchartsClient())
        except Exception:
            log.warning("chart-sync: could not read the Soundcharts quota; trying again later", exc_info=True)
            return None
        try:
            alerts.quota_reading(engine, remaining=reading.remaining, seen_at=reading.seen_at)
        except Exception:  # the episode's bookkeeping never holds the wait up
            log.warning("chart-sync: could not check whether the quota episode ended", exc_info=True)
        return reading
