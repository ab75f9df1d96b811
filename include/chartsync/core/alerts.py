"""Alerts as values: their kinds, the rule for which missed deadlines are worth one (history is not:
catchup and backfill runs get none), and the text every channel sends. Pure: raising, recording and
delivering is ``services.alerts``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import quote

from chartsync.core.calendar import Frequency, next_start
from chartsync.core.timestamps import midnight
from chartsync.settings import DIGEST_DAG_ID

DEADLINE, DEGRADATION, FAILURE, OVERDUE, DIGEST = "deadline", "degradation", "failure", "overdue", "digest"
# one of each per quota episode (``services.alerts.quota_waiting`` / ``quota_restored``)
QUOTA_EXHAUSTED, QUOTA_RESTORED = "quota_exhausted", "quota_restored"
KINDS = (DEADLINE, DEGRADATION, FAILURE, OVERDUE, DIGEST, QUOTA_EXHAUSTED, QUOTA_RESTORED)
LABELS = {DEADLINE: "Sync deadline missed", DEGRADATION: "Sync slower than usual", FAILURE: "Sync failed",
          OVERDUE: "Schedule overdue", DIGEST: "Daily digest", QUOTA_EXHAUSTED: "Soundcharts quota exhausted",
          QUOTA_RESTORED: "Soundcharts quota restored"}


def following_period_end(frequency: str | None, interval_start: datetime, interval_end: datetime) -> datetime:
    """When the period after ``[interval_start, interval_end)`` ends: a calendar frequency's next period
    (months differ in length); otherwise one more interval of the same length (exact for custom schedules,
    a cron's next gap may differ)."""
    try:
        freq = Frequency.parse(frequency or "")
    except ValueError:
        freq = None
    if freq is not None and freq.is_calendar:
        return midnight(next_start(freq, interval_end.astimezone(UTC).date()))
    return interval_end + (interval_end - interval_start)


def is_catchup(*, run_type: str | None, interval_start: datetime | None, interval_end: datetime | None,
               queued_at: datetime | None, frequency: str | None) -> bool:
    """A scheduled run whose period was older than the current one when the run was queued: the period
    after it had ended too. Judged at the run's creation, not at its deadline: a catchup run may be created
    long after its period (catchup creates runs as ``max_active_runs`` frees slots), and a deadline longer
    than a period (custom and cron schedules: twice their interval) passes when a newer period exists."""
    if run_type != "scheduled" or interval_start is None or interval_end is None or queued_at is None:
        return False
    return queued_at >= following_period_end(frequency, interval_start, interval_end)


def skip_reason(kind: str, *, run_type: str | None, deadline_time: datetime | None,
                interval_start: datetime | None, interval_end: datetime | None, queued_at: datetime | None,
                frequency: str | None, schedule_created_at: datetime | None) -> str | None:
    """Why a missed deadline (``kind``: deadline or degradation) is not worth an alert (None: alert).

    History is not an SLA: backfill runs (gap healing, re-syncs) and catchup runs (``is_catchup``) get
    none, nor the periods whose deadline had passed before the schedule was created, nor manual runs
    started after the deadline had passed. ``queued_at``: when the run was created (or queued again).
    """
    if run_type == "backfill":
        return "backfill run"
    if is_catchup(run_type=run_type, interval_start=interval_start, interval_end=interval_end,
                  queued_at=queued_at, frequency=frequency):
        return "catchup run: a newer period had ended when the run was created"
    if kind == DEADLINE and deadline_time is not None:
        if schedule_created_at is not None and deadline_time < schedule_created_at:
            return "history catch-up: the deadline had passed before the schedule was created"
        if run_type == "manual" and queued_at is not None and deadline_time <= queued_at:
            return "manual run started after the deadline had passed"
    if kind == DEGRADATION and interval_end is not None and schedule_created_at is not None \
            and interval_end < schedule_created_at:
        return "history catch-up: the period ended before the schedule was created"
    return None


@dataclass(frozen=True)
class Alert:
    kind: str
    summary: str  # what was missed, one line
    chart_id: int | None = None
    chart: str | None = None  # slug
    chart_name: str | None = None
    schedule_id: int | None = None
    dag_id: str | None = None
    run_id: str | None = None
    period: date | None = None
    details: tuple[str, ...] = field(default_factory=tuple)

    @property
    def title(self) -> str:
        subject = self.chart_name or self.chart or self.dag_id
        label = LABELS.get(self.kind, self.kind)
        if self.kind == FAILURE and self.chart_id is None and self.chart is None:
            label = "Task failed"  # a DAG that syncs no chart: the quality checks, the gap audit, the digest
        text = f"[chart-sync] {label}"
        text += f": {subject}" if subject else ""
        return text + (f", period {self.period.isoformat()}" if self.period else "")


def _seen(remaining: int | None, seen_at: datetime | None) -> str:
    if seen_at is None:
        return "the quota has not been read yet"
    left = "an unknown amount" if remaining is None else f"{remaining:,} call(s)"
    return f"the quota was last seen at {seen_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC: {left} left"


def quota_exhausted_alert(*, remaining: int | None, seen_at: datetime | None, reserve: int, waiting: int,
                          recheck_seconds: float) -> Alert:
    """The one alert that opens a quota episode: syncs wait (they do not fail) until the quota is back.
    ``waiting``: the periods waiting when the episode opened."""
    if remaining is not None and 0 < remaining:
        cause = (f"The Soundcharts API quota is down to {remaining:,} call(s), below the reserve of {reserve:,} kept "
                 "for each chart's newest period: history (catchup and backfill periods) waits.")
    else:
        cause = "The Soundcharts API quota is used up: syncs wait until it is back."
    return Alert(kind=QUOTA_EXHAUSTED, summary=f"{cause} Nothing fails and no retry is spent.", details=(
        f"{waiting} period(s) waiting so far; periods that start meanwhile join them",
        _seen(remaining, seen_at),
        f"the quota is read again every {human_seconds(recheck_seconds)} (it costs nothing); the waiting periods "
        "go on by themselves once it is back",
        "to go on sooner: add quota with Soundcharts, or pause history backfills"))


def quota_restored_alert(*, remaining: int | None, seen_at: datetime | None, started_at: datetime,
                         waited: int, now: datetime) -> Alert:
    """The one alert that closes a quota episode; ``waited``: the periods that waited during it."""
    return Alert(kind=QUOTA_RESTORED, summary=(
        f"The Soundcharts API quota is back after {lasted(now - started_at)}: "
        "the waiting periods sync again, history included."), details=(
        f"{waited} period(s) waited during this episode",
        _seen(remaining, seen_at)))


@dataclass(frozen=True)
class DeadlineOutcome:
    """What became of a missed deadline: the alert raised, or why there is none."""

    kind: str
    chart: str | None
    alert: Alert | None = None
    reason: str | None = None

    def __str__(self) -> str:  # the deadline callback's result, stored by Airflow
        if self.alert is not None:
            return f"{self.kind} alert raised for {self.chart}"
        return f"no {self.kind} alert for {self.chart}: {self.reason}"


def links(base_url: str, *, dag_id: str | None = None, run_id: str | None = None,
          schedule_id: int | None = None) -> dict[str, str]:
    """The Airflow UI page of the DAG run and the chart-sync page of the schedule."""
    base = (base_url or "").rstrip("/")
    found = {}
    if dag_id and run_id:
        found["dag_run"] = f"{base}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"
    elif dag_id:
        found["dag"] = f"{base}/dags/{quote(dag_id, safe='')}"
    if schedule_id is not None:
        found["schedule"] = f"{base}/chart-sync/ui/schedules/{schedule_id}"
    return found


def format_message(alert: Alert, base_url: str) -> str:
    """The text every channel sends and the alert table stores."""
    lines = [alert.title, alert.summary]
    if alert.chart and alert.chart_name:
        lines.append(f"- chart: {alert.chart_name} ({alert.chart})")
    lines += [f"- {d}" for d in alert.details]
    names = {"dag_run": "DAG run", "dag": "DAG", "schedule": "Schedule"}
    for key, url in links(base_url, dag_id=alert.dag_id, run_id=alert.run_id,
                          schedule_id=alert.schedule_id).items():
        lines.append(f"{names[key]}: {url}")
    return "\n".join(lines)


def payload(alert: Alert, text: str, base_url: str, created_at: datetime) -> dict[str, Any]:
    """The JSON document the webhook channel POSTs."""
    return {
        "kind": alert.kind, "title": alert.title, "summary": alert.summary, "message": text,
        "chart": {"id": alert.chart_id, "slug": alert.chart, "name": alert.chart_name},
        "schedule_id": alert.schedule_id, "dag_id": alert.dag_id, "run_id": alert.run_id,
        "period": alert.period.isoformat() if alert.period else None, "details": list(alert.details),
        "links": links(base_url, dag_id=alert.dag_id, run_id=alert.run_id, schedule_id=alert.schedule_id),
        "created_at": created_at.isoformat(),
    }


@dataclass(frozen=True)
class Digest:
    since: datetime
    until: datetime
    overdue: list[dict]
    alerts: dict[str, list[dict]]  # failure / deadline / degradation alerts of the window
    failed_tries: int
    # per chart, its rankings checked in the window and flagged: chart, chart_name, schedule_id, flagged,
    # flag_counts ({flag: rankings})
    quality: list[dict] = field(default_factory=list)

    @property
    def rankings_flagged(self) -> int:
        return sum(q["flagged"] for q in self.quality)


def digest_alert(digest: Digest, base_url: str) -> Alert:
    """One alert that lists overdue schedules, final failures, deadline misses and the charts with flagged
    rankings of the window."""
    counts = [f"{len(digest.overdue)} overdue schedule(s)", f"{len(digest.alerts[FAILURE])} failure(s)",
              f"{len(digest.alerts[DEADLINE])} deadline miss(es)",
              f"{len(digest.alerts[DEGRADATION])} slow run(s)", f"{digest.failed_tries} failed try(ies)",
              f"{digest.rankings_flagged} ranking(s) flagged"]
    details = []
    for o in digest.overdue:
        last = f"last success {o['last_success']:%Y-%m-%d %H:%M} UTC" if o["last_success"] else "never synced"
        page = links(base_url, schedule_id=o["schedule_id"])["schedule"]
        details.append(f"overdue: {o['chart_name']} ({o['chart']}, {o['frequency']}), {last}: {page}")
    for kind in (FAILURE, DEADLINE, DEGRADATION):
        for a in digest.alerts[kind]:
            period = f", period {a['period']}" if a["period"] else ""
            where = a["links"].get("dag_run") or a["links"].get("dag") or ""
            details.append(f"{LABELS[kind].lower()}: {a['chart_name'] or a['chart'] or a['dag_id']}{period} "
                           f"at {a['created_at']:%Y-%m-%d %H:%M} UTC {where}".rstrip())
    for q in digest.quality:
        flags = ", ".join(f"{flag} {n}" for flag, n in q["flag_counts"].items() if n)
        page = links(base_url, schedule_id=q["schedule_id"]).get("schedule", "")
        details.append(f"ranking quality: {q['chart_name']} ({q['chart']}), {q['flagged']} ranking(s) flagged "
                       f"({flags}) {page}".rstrip())
    window = f"{digest.since:%Y-%m-%d %H:%M} - {digest.until:%Y-%m-%d %H:%M} UTC"
    summary = f"{window}: " + ", ".join(counts) + ("." if details else "; nothing to report.")
    return Alert(kind=DIGEST, summary=summary, dag_id=DIGEST_DAG_ID, details=tuple(details))


def human(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes // 60} h" if minutes % 60 == 0 else f"{minutes} min"


def lasted(delta: timedelta) -> str:
    """How long something lasted, in plain words: days and hours, hours and minutes, or minutes."""
    minutes = max(int(delta.total_seconds() // 60), 0)
    days, hours, mins = minutes // 1440, minutes // 60 % 24, minutes % 60
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {mins} min"
    return f"{mins} min" if mins else "less than a minute"


def human_seconds(seconds: float) -> str:
    """A recheck interval: whole minutes when it is some, else seconds."""
    return human(timedelta(seconds=seconds)) if seconds >= 60 else f"{seconds:g} s"
