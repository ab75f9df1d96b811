"""chartsync.seam.metrics through Airflow's real Stats singleton and loggers: what a StatsD daemon (a UDP
socket the test owns) and an OpenTelemetry reader receive, in each of Airflow's tag modes."""

from __future__ import annotations

import json
import logging
import socket
from datetime import date, datetime, timedelta
from functools import partial

import pytest
from airflow.sdk._shared.observability.metrics import stats as singleton
from airflow.sdk._shared.observability.metrics.otel_logger import SafeOtelLogger, name_is_otel_safe
from airflow.sdk._shared.observability.metrics.statsd_logger import get_statsd_logger
from airflow.sdk._shared.observability.metrics.validators import stat_name_default_handler
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import Gauge, Histogram, InMemoryMetricReader, Sum
from statsd import StatsClient

from chartsync.core.alerts import FAILURE, Alert
from chartsync.seam import metrics
from chartsync.seam.metrics import ENTRIES_WRITTEN, SYNC_DURATION


@pytest.fixture(autouse=True)
def own_singleton(monkeypatch):
    """Airflow's Stats singleton as it was before the test (each test installs its own backend)."""
    saved = singleton._factory, singleton._backend, singleton._export_legacy_names
    monkeypatch.setattr(metrics, "_failed", set())
    monkeypatch.setenv("AIRFLOW__METRICS__LEGACY_NAMES_ON", "False")
    yield
    singleton._factory, singleton._backend, singleton._export_legacy_names = saved


class StatsdDaemon:
    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]

    def lines(self) -> list[str]:
        got = []
        try:
            while True:
                got += self.sock.recv(65535).decode().splitlines()
        except TimeoutError:
            return got


@pytest.fixture
def daemon():
    d = StatsdDaemon()
    yield d
    d.sock.close()


def use_statsd(daemon: StatsdDaemon, influxdb: bool = False) -> None:
    singleton.initialize(factory=partial(get_statsd_logger, stats_class=StatsClient, host="127.0.0.1",
                                         port=daemon.port, prefix="airflow", influxdb_tags_enabled=influxdb,
                                         statsd_influxdb_enabled=influxdb), export_legacy_names=False)


# -- the catalogue ---------------------------------------------------------------------------------------
def test_every_name_passes_airflows_validators_and_is_declared_once():
    names = [m.name for m in metrics.CATALOGUE]
    assert len(names) == len(set(names))
    for m in metrics.CATALOGUE:
        assert m.stat.startswith("chartsync.")
        assert stat_name_default_handler(f"airflow.{m.stat}") == f"airflow.{m.stat}"
        assert name_is_otel_safe("airflow", m.stat)
        assert m.kind in (metrics.COUNTER, metrics.GAUGE, metrics.TIMER)
        assert all(t.isidentifier() for t in m.tags) and m.meaning


def test_the_docs_list_every_metric_with_its_type_and_tags():
    from stacks import ROOT

    text = (ROOT / "docs" / "metrics.md").read_text()
    for m in metrics.CATALOGUE:
        row = next((line for line in text.splitlines() if line.startswith(f"| `{m.stat}`")), None)
        assert row is not None, f"{m.stat} missing from docs/metrics.md"
        assert m.kind in row and all(f"`{t}`" in row for t in m.tags), row


# -- StatsD -------------------------------------------------------------------------------------------------
def test_plain_statsd_gets_counter_gauge_and_timer_without_tags(daemon):
    use_statsd(daemon)
    metrics.incr(ENTRIES_WRITTEN, 200, chart="top-50")
    metrics.gauge(metrics.COVERAGE, 87.5, chart="top-50")
    metrics.timing(SYNC_DURATION, timedelta(seconds=1.5), chart="top-50", status="success")
    assert daemon.lines() == ["airflow.chartsync.sync.entries_written:200|c",
                              "airflow.chartsync.chart.coverage_percent:87.5|g",
                              "airflow.chartsync.sync.duration:1500.000000|ms"]


def test_legacy_names_carry_the_tag_values_for_statsd_without_tags(daemon, monkeypatch):
    monkeypatch.setenv("AIRFLOW__METRICS__LEGACY_NAMES_ON", "True")
    use_statsd(daemon)
    metrics.incr(metrics.API_REQUESTS, endpoint="ranking", status=429)
    metrics.gauge(metrics.FRESHNESS, 60, chart="apple.top-100")  # a '.' inside a value: '__', as Airflow's
    assert daemon.lines() == ["airflow.chartsync.soundcharts.requests:1|c",
                              "airflow.chartsync.soundcharts.requests.ranking.429:1|c",
                              "airflow.chartsync.chart.freshness_seconds:60|g",
                              "airflow.chartsync.chart.freshness_seconds.apple__top-100:60|g"]


def test_influxdb_mode_puts_the_tags_in_the_line(daemon):
    use_statsd(daemon, influxdb=True)
    metrics.incr(metrics.ALERTS_SENT, channel="slack", kind="failure", status="sent")
    metrics.incr(metrics.RECONCILER_FAILURES, 0)  # no tags
    assert daemon.lines() == ["airflow.chartsync.alerts.sent,channel=slack,kind=failure,status=sent:1|c",
                              "airflow.chartsync.reconciler.failures_recorded:0|c"]


def test_tag_values_are_reduced_to_what_every_backend_accepts(daemon):
    use_statsd(daemon, influxdb=True)
    metrics.incr(metrics.QUALITY_FLAGS, chart="a b/c=d,e", flag="")
    assert daemon.lines() == ["airflow.chartsync.quality.flags,chart=a_b_c_d_e,flag=none:1|c"]
    assert metrics.tag_value("x" * 300) == "x" * metrics.MAX_TAG_LENGTH


def test_airflows_allow_list_applies_to_chartsync_names(daemon):
    singleton.initialize(factory=partial(get_statsd_logger, stats_class=StatsClient, host="127.0.0.1",
                                         port=daemon.port, prefix="airflow", metrics_allow_list="soundcharts"),
                         export_legacy_names=False)
    metrics.incr(metrics.API_REQUESTS, endpoint="song", status=200)
    metrics.incr(ENTRIES_WRITTEN, 5, chart="x")
    assert daemon.lines() == ["airflow.chartsync.soundcharts.requests:1|c"]


def test_the_statsd_settings_of_airflow_cfg_are_used_when_no_component_initialised_stats(daemon, monkeypatch):
    monkeypatch.setenv("AIRFLOW__METRICS__STATSD_ON", "True")
    monkeypatch.setenv("AIRFLOW__METRICS__STATSD_HOST", "127.0.0.1")
    monkeypatch.setenv("AIRFLOW__METRICS__STATSD_PORT", str(daemon.port))
    monkeypatch.setenv("AIRFLOW__METRICS__STATSD_PREFIX", "prod")
    singleton._factory, singleton._backend = None, None
    metrics.incr(metrics.HEALS_STARTED, chart="c1")
    assert daemon.lines() == ["prod.chartsync.heal.backfills_started:1|c"]


# -- never in the way ---------------------------------------------------------------------------------------
def test_a_wrong_call_is_logged_and_nothing_is_sent(daemon, caplog):
    use_statsd(daemon)
    with caplog.at_level(logging.WARNING, logger="chartsync.seam.metrics"):
        metrics.gauge(ENTRIES_WRITTEN, 1, chart="x")  # a counter
        metrics.incr(metrics.API_RETRIES, endpoint="ranking")  # a tag short
    assert daemon.lines() == []
    assert "is a counter, not a gauge" in caplog.text and "takes the tags" in caplog.text


def test_a_failing_backend_is_logged_once_and_never_raised(caplog):
    class Broken:
        def incr(self, *args, **kwargs):
            raise OSError("statsd host unreachable")

    singleton.initialize(factory=Broken, export_legacy_names=False)
    with caplog.at_level(logging.DEBUG, logger="chartsync.seam.metrics"):
        for _ in range(3):
            metrics.incr(ENTRIES_WRITTEN, 3, chart="x")
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "chartsync.sync.entries_written not sent" in warnings[0].getMessage()


# -- OpenTelemetry --------------------------------------------------------------------------------------------
def test_otel_gets_counters_gauges_and_histograms_with_attributes():
    reader = InMemoryMetricReader()
    singleton.initialize(factory=lambda: SafeOtelLogger(MeterProvider(metric_readers=[reader]), prefix="airflow"),
                         export_legacy_names=False)
    metrics.incr(ENTRIES_WRITTEN, 200, chart="top-50")
    metrics.incr(ENTRIES_WRITTEN, 50, chart="top-50")
    metrics.gauge(metrics.GAPS_OPEN, 4, chart="top-50")
    metrics.timing(SYNC_DURATION, timedelta(milliseconds=250), chart="top-50", status="failed")
    found = {m.name: m.data for rm in reader.get_metrics_data().resource_metrics
             for sm in rm.scope_metrics for m in sm.metrics}
    entries = found["airflow.chartsync.sync.entries_written"]
    assert isinstance(entries, Sum) and entries.is_monotonic
    assert [(p.value, dict(p.attributes)) for p in entries.data_points] == [(250, {"chart": "top-50"})]
    gaps = found["airflow.chartsync.gaps.open_periods"]
    assert isinstance(gaps, Gauge) and [p.value for p in gaps.data_points] == [4]
    duration = found["airflow.chartsync.sync.duration"]
    assert not isinstance(duration, (Sum, Gauge))  # a histogram (exponential buckets in Airflow's provider)
    point = duration.data_points[0]
    assert (point.count, point.sum, dict(point.attributes)) == (1, 250.0, {"chart": "top-50", "status": "failed"})
    assert isinstance(duration, Histogram) or type(duration).__name__ == "ExponentialHistogram"


# -- the call sites -----------------------------------------------------------------------------------------
@pytest.fixture
def sent(monkeypatch) -> list[tuple]:
    """What the call sites hand the seam: (name, value, tags)."""
    calls: list[tuple] = []

    class Recorder:
        def incr(self, stat, count=1, **kw):
            calls.append((stat, count, kw.get("tags")))

        gauge = timing = incr

    singleton.initialize(factory=Recorder, export_legacy_names=False)
    return calls


def test_the_client_counts_every_attempt_and_each_retry(emulator, emulator_admin, monkeypatch, sent):
    from chartsync.soundcharts.client import SoundchartsClient

    monkeypatch.setenv("AIRFLOW_CONN_SOUNDCHARTS_DEFAULT", json.dumps(
        {"conn_type": "http", "host": emulator.url, "login": "soundcharts", "password": "soundcharts"}))
    emulator_admin.fault(kind="429", retry_after=0, count=1)
    day = date.today() - timedelta(days=4)
    SoundchartsClient(max_attempts=3).ranking("spotify-top-200-global-daily", f"{day.isoformat()}T00:00:00+00:00")
    requests = [tags for stat, _, tags in sent if stat == "chartsync.soundcharts.requests"]
    assert requests == [{"endpoint": "ranking", "status": "429"}] + [{"endpoint": "ranking", "status": "200"}] * 2
    assert [tags for stat, _, tags in sent if stat == "chartsync.soundcharts.retries"] == [
        {"endpoint": "ranking", "status": "429"}]


def test_alerts_are_counted_by_channel_and_outcome_and_unknown_names_stay_out(monkeypatch, sent):
    from chartsync.seam import notifiers
    from chartsync.services import alerts

    monkeypatch.setattr(notifiers, "deliver", lambda *a, **k: {"slack": "sent", "webhook": "failed: 500",
                                                              "https://secret.example/hook": "failed: unknown"})
    alerts._deliver(Alert(kind=FAILURE, summary="x", chart="c1"), "text", "http://ui", datetime(2026, 1, 1), None)
    assert [tags for stat, _, tags in sent if stat == "chartsync.alerts.sent"] == [
        {"channel": "slack", "kind": FAILURE, "status": "sent"},
        {"channel": "webhook", "kind": FAILURE, "status": "failed"},
        {"channel": "other", "kind": FAILURE, "status": "failed"}]
