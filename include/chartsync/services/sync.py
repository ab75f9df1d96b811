"""Sync one chart period: the decisions of a sync run and the fetch-then-store of one period.

``sync_run`` is the use case the chart DAGs' task and ``chartsync sync`` call: it works out the
period, pulls the newest period forward on the first catchup run (``sync_immediately``), waits
while a period is unpublished, records a period the API skipped, waits for the quota (used up, or
below the reserve while the period is history: fresh data first), and returns an outcome
(``core.outcomes``). ``sync_period`` fetches every page, then stores ranking, entries, tracks,
the ranking's quality row and the execution row in ONE transaction (``store.rankings``,
``store.quality``, ``store.executions``). A ranking that fails a hard check (``core.quality``)
is refused as a malformed answer: nothing is written and the failure is recorded.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, date, datetime

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import StatementError

from chartsync.core import calendar, quality
from chartsync.core.gaps import history_window
from chartsync.core.outcomes import (
    BELOW_RESERVE,
    EXHAUSTED,
    SKIPPED,
    Failed,
    NothingToDo,
    NotPublishedYet,
    RunRef,
    Skipped,
    Synced,
    SyncOutcome,
    SyncResult,
    WaitingForQuota,
)
from chartsync.core.quota import below_reserve
from chartsync.core.schedule import ScheduleConfig
from chartsync.core.timestamps import midnight
from chartsync.seam import metrics
from chartsync import settings
from chartsync.services import alerts, quota
from chartsync.soundcharts.client import SoundchartsClient
from chartsync.soundcharts.errors import (
    SoundchartsMalformedResponse,
    SoundchartsNotFound,
    SoundchartsQuotaExhausted,
)
from chartsync.soundcharts.models import Ranking, atom_for
from chartsync.store import executions
from chartsync.store import quota as quota_store
from chartsync.store.rankings import claim_period, store_claimed

log = logging.getLogger(__name__)


def period_for_run(config: ScheduleConfig, logical_date: datetime | None,
                   interval_end: datetime | None) -> date | None:
    """The period a run syncs; ``None`` means the latest published one.

    Calendar schedules sync the period of the run's logical date. For scheduled and backfill
    runs that is ``data_interval_start``; a manual run triggered "for 2026-03-01" syncs
    2026-03-01 (Airflow gives such a run the interval *ending* at that date). Custom and cron
    schedules sync the newest complete period of the chart's own calendar.
    """
    if logical_date is None or interval_end is None:
        return None
    if config.frequency.is_calendar:
        return calendar.align(config.frequency, logical_date.date(), config.weekday)
    return calendar.latest_complete_period(config.period_frequency, interval_end, config.weekday).start


def pulls_newest_first(config: ScheduleConfig, period: date | None, run_type: str | None) -> bool:
    """The scheduled run of the first history period: where sync_immediately pulls the newest one forward."""
    return (config.sync_immediately and config.sync_historical_data and config.frequency.is_calendar
            and period == config.history_start and run_type == "scheduled")


def sync_run(engine: Engine, client: SoundchartsClient, config: ScheduleConfig, run: RunRef,
             period: date | None, *, run_type: str | None = None, now: datetime | None = None,
             wait_for_quota: bool = False) -> SyncOutcome:
    """Sync the run's period (``None``: the newest published) and say how it went.

    API and DB failures other than "not published" are raised: they are worth a retry. Success or
    failure, the calls the try spent and the quota the API last reported are recorded (``services.quota``).

    Quota, for a caller that can wait (``wait_for_quota``: the chart DAG's task, which defers): a quota 429
    is no failure: the period waits (``WaitingForQuota``, its execution row ``waiting_for_quota``, the
    episode's one alert). While the quota last seen is below the reserve, a history period (catchup,
    backfill) waits without spending a call; the newest period goes on. A caller that cannot wait (``chartsync
    sync``: a person asked for it now) gets neither: the quota 429 is a failed try, raised. A success that sees
    the reserve back ends the episode (its "restored" alert, once).
    """
    before = client.request_count
    try:
        outcome = _sync_run(engine, client, config, run, period, run_type=run_type, now=now,
                            gate=wait_for_quota)
    except SoundchartsQuotaExhausted as exc:
        if not wait_for_quota:
            executions.record_failure(engine, run, period, now or datetime.now(UTC), describe_error(exc))
            raise
        outcome = _wait_for_quota(engine, client, config, run, period, exc, run_type, now)
    finally:
        quota.record(engine, client, chart_id=run.chart_id, calls=client.request_count - before)
    if not isinstance(outcome, WaitingForQuota) and client.quota is not None:
        _note_reading(engine, client.quota.remaining, client.quota.seen_at)
    return outcome


def is_history(config: ScheduleConfig, period: date | None, run_type: str | None, today: date) -> bool:
    """A catchup or backfill period: a backfill run, or a period older than the newest complete one."""
    if run_type == "backfill":
        return True
    return period is not None and period < history_window(config, today)[1]


def _reserve_gate(engine: Engine, config: ScheduleConfig, run: RunRef, period: date | None,
                  run_type: str | None, now: datetime) -> WaitingForQuota | None:
    """Fresh data first: a history period waits while the quota last seen is below the reserve."""
    if not is_history(config, period, run_type, now.date()):
        return None
    reserve = settings.quota_reserve()
    latest = quota_store.latest_reading(engine)
    if latest is None or not below_reserve(latest.remaining, reserve):
        return None
    reason = (f"{config.slug}: period {period} waits for the quota: {latest.remaining:,} left, below the reserve of "
              f"{reserve:,} kept for the newest periods")
    return _waiting(engine, run, period, now, WaitingForQuota(period, latest.remaining, latest.seen_at,
                                                              BELOW_RESERVE, history=True), reason, ())


def _wait_for_quota(engine: Engine, client: SoundchartsClient, config: ScheduleConfig, run: RunRef,
                    period: date | None, exc: SoundchartsQuotaExhausted, run_type: str | None,
                    now: datetime | None) -> WaitingForQuota:
    now = now or datetime.now(UTC)
    seen = client.quota
    remaining = exc.remaining if exc.remaining is not None else (seen.remaining if seen else None)
    waiting = WaitingForQuota(period, remaining, seen.seen_at if seen else now, EXHAUSTED,
                              history=is_history(config, period, run_type, now.date()))
    reason = f"{config.slug}: period {period or 'latest'} waits for the quota: used up ({exc})"
    return _waiting(engine, run, period, now, waiting, reason, getattr(exc, "synced", ()))


def _waiting(engine: Engine, run: RunRef, period: date | None, now: datetime, waiting: WaitingForQuota,
             reason: str, synced: tuple[SyncResult, ...]) -> WaitingForQuota:
    """Record the wait (the try's row, the episode and its one alert) and say so. The bookkeeping never
    turns the wait into a failure: when the chart DB cannot take it, the wait stands and is logged."""
    log.warning(reason)
    try:
        started = executions.record_waiting(engine, run, period, now, reason)
        alerts.quota_waiting(engine, remaining=waiting.remaining, seen_at=waiting.seen_at, started_waiting=started,
                             now=now)
    except Exception:
        log.exception("chart-sync: could not record that %s %s waits for the quota", run.run_id, period)
    return replace(waiting, results=synced)


def _note_reading(engine: Engine, remaining: int | None, seen_at: datetime) -> None:
    try:
        alerts.quota_reading(engine, remaining=remaining, seen_at=seen_at)
    except Exception:  # the episode's bookkeeping never fails a sync
        log.exception("chart-sync: could not check whether the quota episode ended")


def _sync_run(engine: Engine, client: SoundchartsClient, config: ScheduleConfig, run: RunRef,
              period: date | None, *, run_type: str | None, now: datetime | None, gate: bool) -> SyncOutcome:
    log.info("Syncing %s period %s (run %s, try %s)", config.slug, period or "latest", run.run_id, run.try_number)
    if period is not None and (reason := _not_complete(config, period, (now or datetime.now(UTC)).date())):
        executions.record_failure(engine, run, period, now or datetime.now(UTC), reason, status=SKIPPED)
        log.warning(reason)
        return NothingToDo(period, reason)
    if gate and (waiting := _reserve_gate(engine, config, run, period, run_type, now or datetime.now(UTC))):
        return waiting
    synced: list[SyncResult] = []
    if pulls_newest_first(config, period, run_type):
        try:  # sync_immediately: the newest period first, then this run's (the oldest) period
            synced.append(sync_period(engine, client, run, config.slug, None))
            log.info("%s: sync_immediately synced the newest period %s first", config.slug, synced[0].period)
        except SoundchartsNotFound:
            log.warning("%s: no newest period published yet; continuing with %s", config.slug, period)
    try:
        result = sync_period(engine, client, run, config.slug, period)
    except SoundchartsNotFound as exc:
        return _unpublished(engine, client, config, run, period, tuple(synced), exc, now or datetime.now(UTC))
    except SoundchartsQuotaExhausted as exc:
        exc.synced = tuple(synced)  # the newest period pulled forward before the quota ran out
        raise
    return Synced(result, (*synced, result))


def _not_complete(config: ScheduleConfig, period: date, today: date) -> str | None:
    """Why ``period`` cannot be synced yet (a manual run Airflow was asked for in the current period),
    or None. Airflow itself creates no task before the DAG's first period."""
    last = history_window(config, today)[1]
    if period > last:
        return f"{config.slug}: period {period} is not complete yet (the latest is {last}): nothing to sync"
    return None


def _unpublished(engine: Engine, client: SoundchartsClient, config: ScheduleConfig, run: RunRef,
                 period: date | None, synced: tuple[SyncResult, ...], exc: SoundchartsNotFound,
                 now: datetime) -> SyncOutcome:
    """The period is not published: wait (bounded), record it as skipped by the API, or give up."""
    if period is None:
        return Failed(f"{config.slug}: no published ranking ({exc})", synced)
    period_end = midnight(calendar.next_start(config.period_frequency, period))
    until = period_end + calendar.publication_wait(config.period_frequency)
    if now < until:
        retry_at = min(now + calendar.POKE_INTERVAL, until)
        log.info("%s period %s is not published yet; checking again at %s (waiting until %s)",
                 config.slug, period, retry_at, until)
        return NotPublishedYet(period, retry_at, until, synced)
    if any(d[:10] > period.isoformat() for d in client.available_rankings(config.slug)):
        message = f"{config.slug}: the API skipped period {period} (later periods are published)"
        executions.record_failure(engine, run, period, now, message, status=SKIPPED,
                                  api_requests=client.request_count)
        log.warning(message)
        return Skipped(period, message, synced)
    return Failed(f"{config.slug}: period {period} still not published {until - period_end} after it ended", synced)


def fetch_ranking(client: SoundchartsClient, slug: str, period: date | None) -> Ranking:
    """All pages of the ranking for ``period`` (``None``: the latest published one)."""
    return client.ranking(slug, None if period is None else atom_for(period))


def sync_period(
    engine: Engine,
    client: SoundchartsClient,
    run: RunRef,
    slug: str,
    period: date | None,
) -> SyncResult:
    """Fetch every page, then store ranking, entries, tracks, quality and the execution row in one
    transaction.

    ``SoundchartsNotFound`` (not published yet) propagates without writing anything, so the
    caller can wait. Any other failure is recorded as a failed execution and re-raised; a ranking
    the hard checks reject is a ``SoundchartsMalformedResponse`` naming the check.
    """
    started = datetime.now(UTC)
    before = client.request_count
    try:
        ranking = fetch_ranking(client, slug, period)
        if period is not None and ranking.period != period:
            raise SoundchartsMalformedResponse(f"{slug}: asked for period {period}, the API answered {ranking.period}")
    except (SoundchartsNotFound, SoundchartsQuotaExhausted):  # waits, not failures: the caller decides
        raise
    except Exception as exc:
        executions.record_failure(engine, run, period, started, describe_error(exc),
                                  api_requests=client.request_count - before)
        _timed(slug, started, "failed")
        raise
    now = datetime.now(UTC)
    try:
        with engine.begin() as conn:
            result = store_checked_ranking(conn, run.chart_id, slug, ranking, now)
            result = replace(result, api_requests=client.request_count - before)
            result = replace(result, execution_id=executions.record_success(conn, run, result, started, now))
    except Exception as exc:
        executions.record_failure(engine, run, ranking.period, started, describe_error(exc),
                                  api_requests=client.request_count - before)
        _timed(slug, started, "failed")
        raise
    log.info("%s %s", slug, result.summary())
    _count_stored(slug, result)
    _timed(slug, started, "success")
    return result


def _count_stored(slug: str, result: SyncResult) -> None:
    change = "created" if result.rankings_created else "updated" if result.rankings_updated else "unchanged"
    metrics.incr(metrics.RANKINGS_STORED, chart=slug, change=change)
    metrics.incr(metrics.ENTRIES_WRITTEN, result.entries_written, chart=slug)
    for flag in result.quality_flags:
        metrics.incr(metrics.QUALITY_FLAGS, chart=slug, flag=flag)


def _timed(slug: str, started: datetime, status: str) -> None:
    metrics.timing(metrics.SYNC_DURATION, datetime.now(UTC) - started, chart=slug, status=status)


def store_checked_ranking(conn: Connection, chart_id: int, slug: str, ranking: Ranking, now: datetime) -> SyncResult:
    """Check a fetched ranking, then store it and its quality row inside the caller's transaction.

    The hard checks run on what the claim of the period read (the chart's size), before tracks or entries
    are written: a rejected ranking raises ``SoundchartsMalformedResponse`` (the API's answer breaks the
    ranking's rules) and the caller's transaction rolls the claim back, so nothing is stored and every door
    fails it as it fails a malformed payload. The soft checks' flags are stored with the ranking, logged,
    and returned on the result.
    """
    claim = claim_period(conn, chart_id, ranking, now, quality=True)
    try:
        quality.check_ranking(f"{slug} {ranking.period}", ranking.entries, claim.quality.expected_count)
    except quality.RankingRejected as exc:
        metrics.incr(metrics.RANKINGS_REJECTED, chart=slug, check=exc.check)
        raise SoundchartsMalformedResponse(str(exc)) from exc
    measured = quality.measure(ranking.period, ranking.entries, claim.quality)
    result = store_claimed(conn, claim, ranking, now, measured)
    if measured.flags:
        log.warning("%s %s: stored, flagged by the quality checks: %s", slug, ranking.period, ", ".join(measured.flags))
    return result


def describe_error(exc: BaseException) -> str:
    """A one-line error for the execution log: the driver's message, not the whole SQL statement."""
    if isinstance(exc, StatementError) and exc.orig is not None:
        return f"{type(exc.orig).__name__}: {str(exc.orig).splitlines()[0]}"
    return f"{type(exc).__name__}: {exc}"


