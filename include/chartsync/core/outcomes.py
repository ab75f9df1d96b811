"""What a sync can come to: the execution statuses, a sync's counts, and the outcome a task maps.

A sync service returns one of ``Synced``, ``NotPublishedYet``, ``Skipped``, ``NothingToDo``,
``WaitingForQuota`` or ``Failed``; the DAG builder turns it into Airflow's terms (return value,
reschedule, skip, deferral until the quota is back, fail without retry), and the CLI into an exit code. Errors worth a retry (API down, DB locked) are raised, not returned.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

# chart_sync_execution.status
SUCCESS, FAILED, SKIPPED = "success", "failed", "skipped"
# a try that waits for the Soundcharts quota (deferred in Airflow): its row is replaced by the try's final
# one (success, failed or skipped), so it is never a try's last word once the try has ended
WAITING_FOR_QUOTA = "waiting_for_quota"
EXECUTION_STATUSES = (SUCCESS, FAILED, SKIPPED, WAITING_FOR_QUOTA)  # what the history's status filter takes
# why a period waits: the quota is used up (a quota 429), or below the reserve kept for the newest periods
EXHAUSTED, BELOW_RESERVE = "exhausted", "below_reserve"


@dataclass(frozen=True)
class RunRef:
    """Which try of which run an execution row belongs to (Airflow's task try, or a CLI call)."""

    chart_id: int
    dag_id: str
    run_id: str
    try_number: int = 1


@dataclass(frozen=True)
class SyncResult:
    """What one stored period changed."""

    period: date
    rankings_created: int = 0
    rankings_updated: int = 0
    entries_written: int = 0
    tracks_created: int = 0
    tracks_updated: int = 0
    api_requests: int = 0
    new_track_ids: tuple[int, ...] = ()
    execution_id: int | None = None  # the chart_sync_execution row, once recorded
    quality_flags: tuple[str, ...] = ()  # the soft checks the stored ranking failed (core.quality)

    def summary(self) -> str:
        flags = f", quality flags: {', '.join(self.quality_flags)}" if self.quality_flags else ""
        return (
            f"period {self.period}: rankings created={self.rankings_created} updated={self.rankings_updated}, "
            f"entries written={self.entries_written}, tracks created={self.tracks_created} "
            f"updated={self.tracks_updated}, API requests={self.api_requests}{flags}"
        )

    def as_dict(self) -> dict:
        return {"period": self.period.isoformat(), "status": SUCCESS, "rankings_created": self.rankings_created,
                "rankings_updated": self.rankings_updated, "tracks_created": self.tracks_created,
                "tracks_updated": self.tracks_updated, "entries_written": self.entries_written,
                "api_requests": self.api_requests, "new_track_ids": list(self.new_track_ids),
                "execution_id": self.execution_id, "quality_flags": list(self.quality_flags)}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> SyncResult:
        """``as_dict`` read back (a deferred task carries the periods it stored before waiting)."""
        return cls(period=date.fromisoformat(values["period"]), rankings_created=values["rankings_created"],
                   rankings_updated=values["rankings_updated"], entries_written=values["entries_written"],
                   tracks_created=values["tracks_created"], tracks_updated=values["tracks_updated"],
                   api_requests=values["api_requests"], new_track_ids=tuple(values["new_track_ids"]),
                   execution_id=values["execution_id"], quality_flags=tuple(values["quality_flags"]))


@dataclass(frozen=True)
class Synced:
    """The period is stored; ``results`` also holds the newest period when it was pulled forward."""

    result: SyncResult
    results: tuple[SyncResult, ...] = field(default=())


@dataclass(frozen=True)
class NotPublishedYet:
    """The API has not published the period: ask again at ``retry_at`` (never later than ``until``)."""

    period: date
    retry_at: datetime
    until: datetime
    results: tuple[SyncResult, ...] = ()  # periods synced before the wait (sync_immediately)


@dataclass(frozen=True)
class Skipped:
    """The API skipped the period (later ones are published): recorded, nothing to wait for."""

    period: date
    message: str
    results: tuple[SyncResult, ...] = ()


@dataclass(frozen=True)
class NothingToDo:
    """The run's period is not one the schedule syncs (before its history window, or not complete
    yet): recorded as skipped with the reason; Airflow shows the task skipped, never a green sync."""

    period: date
    message: str
    results: tuple[SyncResult, ...] = ()


@dataclass(frozen=True)
class Failed:
    """A failure a retry cannot mend (nothing published at all, or the wait ran out)."""

    message: str
    results: tuple[SyncResult, ...] = ()


@dataclass(frozen=True)
class WaitingForQuota:
    """The period waits for the Soundcharts quota: used up (``reason`` EXHAUSTED: a quota 429), or below the
    reserve and the period is history (BELOW_RESERVE: no call spent). ``remaining`` and ``seen_at``: the
    quota last seen. ``period`` None: the newest published period. Not a failure: no retry is spent."""

    period: date | None
    remaining: int | None
    seen_at: datetime | None
    reason: str
    history: bool = False  # a catchup or backfill period: it resumes only once the reserve is back
    results: tuple[SyncResult, ...] = ()  # periods synced before the wait (sync_immediately)


SyncOutcome = Synced | NotPublishedYet | Skipped | NothingToDo | WaitingForQuota | Failed


# -- the rankings asset event: what a sync found -------------------------------------------------
@dataclass(frozen=True)
class SyncFinding:
    """One sync execution named by a rankings asset event, with the tracks it created."""

    execution_id: int
    chart_id: int
    new_track_ids: tuple[int, ...] = ()


def rankings_event_extra(chart_id: int, slug: str, results: Iterable[SyncResult]) -> dict[str, Any]:
    """The extra a sync task puts on its rankings asset event (``results``: SyncResults it recorded)."""
    return {
        "chart_id": chart_id,
        "slug": slug,
        "syncs": [{"execution_id": r.execution_id, "period": r.period.isoformat(),
                   "new_track_ids": list(r.new_track_ids)}
                  for r in results if r.execution_id is not None],
    }


def findings_from_extras(extras: Iterable[Mapping[str, Any] | None]) -> list[SyncFinding]:
    """Findings named by asset event extras; events without our keys (e.g. created by hand) add none."""
    findings = []
    for extra in extras:
        if not isinstance(extra, Mapping) or not isinstance(extra.get("chart_id"), int):
            continue
        for sync in extra.get("syncs") or []:
            if isinstance(sync, Mapping) and isinstance(sync.get("execution_id"), int):
                ids = tuple(int(i) for i in sync.get("new_track_ids") or [])
                findings.append(SyncFinding(sync["execution_id"], extra["chart_id"], ids))
    return findings
