"""chart-sync's metrics, sent through Airflow's own metrics layer: the one place chart-sync talks to it.

Airflow 3.3 keeps one ``Stats`` singleton per process for task code (``airflow.sdk.observability.stats``),
built from ``[metrics]`` when the process starts (the task runner, and every process that loads the Task
SDK's serialisers: the scheduler, the api-server, the triggerer, the CLI). It sends to ONE backend, in
this order: DogStatsD (``statsd_datadog_enabled``), StatsD (``statsd_on``), OpenTelemetry (``otel_on``);
with none of them on, nothing is sent. So chart-sync's metrics go wherever Airflow's go, under
Airflow's prefix (``statsd_prefix`` / ``otel_prefix``, ``airflow`` by default), with the same
``metrics_allow_list`` / ``metrics_block_list`` and the same name rules (ASCII letters, digits,
``_.-``; at most 250 characters with the prefix).

Every metric is declared once here (``CATALOGUE``: its name under ``chartsync.``, type, tags and
meaning; docs/metrics.md lists the same). Tags go to Airflow as tags: DogStatsD and OpenTelemetry carry
them, plain StatsD carries them only with ``statsd_influxdb_enabled`` (``name,tag=value``). For plain
StatsD without tags Airflow's answer is its legacy names, with the tag values inside the name
(``ti.finish.<dag_id>.<task_id>.<state>``); with ``[metrics] legacy_names_on`` (Airflow's default)
chart-sync does the same: ``chartsync.sync.entries_written`` tagged ``chart=x`` is also sent as
``chartsync.sync.entries_written.x`` (a ``.`` inside a value becomes ``__``, as in Airflow's).

A metric never breaks the work it measures: whatever the backend or a bad call raises is logged (once
per metric and process) and dropped. Tag values are the domain's own words (chart slugs, HTTP statuses,
endpoint families, channel names); no URL, header, connection or Variable value is ever a tag.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from airflow.sdk._shared.observability.metrics import stats as _singleton
from airflow.sdk.configuration import conf
from airflow.sdk.observability import stats
from airflow.sdk.observability.metrics import stats_utils

log = logging.getLogger(__name__)

PREFIX = "chartsync"
COUNTER, GAUGE, TIMER = "counter", "gauge", "timer"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
MAX_TAG_LENGTH = 100


@dataclass(frozen=True)
class Metric:
    name: str  # under chartsync.
    kind: str  # counter, gauge or timer
    tags: tuple[str, ...]
    meaning: str

    @property
    def stat(self) -> str:
        """The name given to Airflow (which puts its own prefix in front)."""
        return f"{PREFIX}.{self.name}"


# -- the catalogue -------------------------------------------------------------------------------------------
API_REQUESTS = Metric("soundcharts.requests", COUNTER, ("endpoint", "status"),
                      "HTTP requests to the Soundcharts API, one per attempt; status is the HTTP status "
                      "(200, 404, 429, 503, ...) or `error` when no response came (timeout, connection)")
API_RETRIES = Metric("soundcharts.retries", COUNTER, ("endpoint", "status"),
                     "attempts the client repeats after a 429 with Retry-After, a 5xx or no response; status "
                     "is what caused the retry")
RANKINGS_STORED = Metric("sync.rankings_stored", COUNTER, ("chart", "change"),
                         "periods stored by a sync; change is `created`, `updated` or `unchanged`")
ENTRIES_WRITTEN = Metric("sync.entries_written", COUNTER, ("chart",),
                         "ranking entries written (a period stored again unchanged writes none)")
SYNC_DURATION = Metric("sync.duration", TIMER, ("chart", "status"),
                       "fetch-and-store time of one period (ms); status `success` or `failed` (an unpublished "
                       "period is not timed)")
QUALITY_FLAGS = Metric("quality.flags", COUNTER, ("chart", "flag"),
                       "soft quality flags raised on stored rankings (short, gaps, missing_streams, churn, "
                       "previous_mismatch)")
RANKINGS_REJECTED = Metric("quality.rejected", COUNTER, ("chart", "check"),
                           "rankings refused by a hard check (nothing stored); check names the rule")
COVERAGE = Metric("chart.coverage_percent", GAUGE, ("chart",),
                  "stored periods / expected periods of the history window, in %; set by the gap audit")
MISSING_PERIODS = Metric("chart.missing_periods", GAUGE, ("chart",),
                         "expected periods not stored (gaps and what waits for the catchup); set by the gap audit")
FRESHNESS = Metric("chart.freshness_seconds", GAUGE, ("chart",),
                   "seconds since the chart's last successful sync; set by the gap audit (never synced: not sent)")
GAPS_OPEN = Metric("gaps.open_periods", GAUGE, ("chart",),
                   "missing periods behind the DAG's catchup front (what a heal backfills); set whenever gaps "
                   "are computed (pages, REST API, CLI, heals)")
HEALS_STARTED = Metric("heal.backfills_started", COUNTER, ("chart",),
                       "Airflow backfills a heal started (the first range, or the next queued one)")
RECONCILER_PASSES = Metric("reconciler.passes", COUNTER, ("status",),
                           "reconciliations with Airflow's state; status `ok` or `error` (chart DB unreachable)")
RECONCILER_FAILURES = Metric("reconciler.failures_recorded", COUNTER, (),
                             "failed tries a reconciliation recorded that no hook had")
ALERTS_SENT = Metric("alerts.sent", COUNTER, ("channel", "kind", "status"),
                     "alert deliveries per channel (slack, email, webhook; `other` for an unknown name, `none` "
                     "when the channels could not be read); status `sent` or `failed`")
QUOTA_REMAINING = Metric("api.quota_remaining", GAUGE, (),
                         "the Soundcharts API quota left (`x-quota-remaining`), set by the client whenever a "
                         "response or the usage endpoint carries it")

CATALOGUE: tuple[Metric, ...] = (
    API_REQUESTS, API_RETRIES, RANKINGS_STORED, ENTRIES_WRITTEN, SYNC_DURATION, QUALITY_FLAGS, RANKINGS_REJECTED,
    COVERAGE, MISSING_PERIODS, FRESHNESS, GAPS_OPEN, HEALS_STARTED, RECONCILER_PASSES, RECONCILER_FAILURES,
    ALERTS_SENT, QUOTA_REMAINING,
)


# -- sending ---------------------------------------------------------------------------------------------------
def incr(metric: Metric, count: int = 1, **tags: Any) -> None:
    """Add ``count`` to a counter."""
    _send(metric, COUNTER, "incr", count, tags)


def gauge(metric: Metric, value: float, **tags: Any) -> None:
    """Set a gauge."""
    _send(metric, GAUGE, "gauge", value, tags)


def timing(metric: Metric, duration: timedelta, **tags: Any) -> None:
    """Record one duration (sent in milliseconds, as Airflow's timers are)."""
    _send(metric, TIMER, "timing", duration, tags)


_failed: set[str] = set()


def _send(metric: Metric, kind: str, method: str, value: Any, tags: dict[str, Any]) -> None:
    try:
        if metric.kind != kind:
            raise ValueError(f"{metric.stat} is a {metric.kind}, not a {kind}")
        if set(tags) != set(metric.tags):
            raise ValueError(f"{metric.stat} takes the tags {list(metric.tags)}, not {sorted(tags)}")
        values = {name: tag_value(tags[name]) for name in metric.tags}
        backend = _stats()
        getattr(backend, method)(metric.stat, value, tags=values or None)
        if values and conf.getboolean("metrics", "legacy_names_on", fallback=True):
            getattr(backend, method)(legacy_name(metric, values), value)
    except Exception:
        if metric.name not in _failed:  # once per metric and process: a dead backend must not flood the log
            _failed.add(metric.name)
            log.warning("chart-sync metric %s not sent (metrics never stop the work)", metric.stat, exc_info=True)
        else:
            log.debug("chart-sync metric %s not sent", metric.stat, exc_info=True)


def tag_value(value: Any) -> str:
    """A tag value Airflow's validators and every backend accept: ``[A-Za-z0-9_.-]``, at most 100 characters."""
    text = _UNSAFE.sub("_", str(value))[:MAX_TAG_LENGTH]
    return text or "none"


def legacy_name(metric: Metric, values: dict[str, str]) -> str:
    """The name with the tag values inside it, in the catalogue's order, for StatsD without tags."""
    return ".".join([metric.stat, *(values[name].replace(".", "__") for name in metric.tags)])


def _stats():
    """Airflow's Stats for this process; initialised from ``[metrics]`` the way Airflow's processes do it
    when nothing did yet (a process that loaded only parts of the Task SDK)."""
    if getattr(_singleton, "_factory", None) is None:
        stats.initialize(factory=stats_utils.get_stats_factory(),
                         export_legacy_names=conf.getboolean("metrics", "legacy_names_on", fallback=True))
    return stats
