"""chart-sync's metrics from a real sync (`airflow dags test` against the emulator), through Airflow's own
metrics layer: once with StatsD on, to a UDP socket the test owns, once with OpenTelemetry on, to an
OTLP/HTTP receiver the test owns."""

from __future__ import annotations

import gzip
import re
import socket
import threading
from collections import defaultdict
from datetime import date, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from sqlalchemy import func, select

from chartsync import settings
from chartsync.store.tables import chart, chart_expected_period

pytestmark = pytest.mark.integration

SLUG = "spotify-top-200-global-daily"
LINE = re.compile(r"^(?P<name>[^,:]+)(?P<tags>(,[^,=:]+=[^,:]*)*):(?P<value>[-0-9.]+)\|(?P<type>c|g|ms)$")


def published_size(emulator, day: date) -> int:
    """The ranking's size as the emulator publishes it (its first page's total)."""
    r = requests.get(f"{emulator.url}/api/v2.14/chart/song/{SLUG}/ranking/{day.isoformat()}T00:00:00%2B00:00",
                     params={"limit": 1}, headers={"x-app-id": "soundcharts", "x-api-key": "soundcharts"},
                     timeout=10)
    r.raise_for_status()
    return r.json()["page"]["total"]


def sync_one_period(af, period: date) -> None:
    af.chartsync("charts", "import", "--platform", "spotify")
    af.chartsync("schedules", "add", SLUG)
    af.airflow("dags", "test", f"chart_sync__{SLUG}", period.isoformat())


# -- StatsD ----------------------------------------------------------------------------------------------------
class StatsdDaemon:
    """Every line sent to a UDP port of 127.0.0.1, collected by a thread."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.lines: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                self.lines += self.sock.recv(65535).decode().splitlines()
            except TimeoutError:
                continue

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()

    def chartsync(self) -> list[tuple[str, dict, float, str]]:
        """chart-sync's lines as (name, tags, value, type)."""
        found = []
        for line in self.lines:
            if not line.startswith("airflow.chartsync."):
                continue
            m = LINE.match(line)
            assert m, f"not a StatsD line with InfluxDB tags: {line!r}"
            tags = dict(t.split("=", 1) for t in m["tags"].split(",")[1:]) if m["tags"] else {}
            found.append((m["name"], tags, float(m["value"]), m["type"]))
        return found


@pytest.fixture
def statsd():
    daemon = StatsdDaemon()
    yield daemon
    daemon.close()


def test_a_sync_sends_its_metrics_to_statsd(airflow_sqlite, emulator, statsd):
    af = airflow_sqlite
    af.env.update({"AIRFLOW__METRICS__STATSD_ON": "True", "AIRFLOW__METRICS__STATSD_HOST": "127.0.0.1",
                   "AIRFLOW__METRICS__STATSD_PORT": str(statsd.port), "AIRFLOW__METRICS__STATSD_PREFIX": "airflow",
                   "AIRFLOW__METRICS__STATSD_INFLUXDB_ENABLED": "True", "AIRFLOW__METRICS__LEGACY_NAMES_ON": "False"})
    period = date.today() - timedelta(days=3)
    sync_one_period(af, period)
    af.airflow("dags", "test", settings.GAP_AUDIT_DAG_ID)
    sent = statsd.chartsync()
    by_name = defaultdict(list)
    for name, tags, value, kind in sent:
        by_name[name].append((tags, value, kind))
    chart_tag = {"chart": SLUG}

    assert by_name["airflow.chartsync.sync.entries_written"] == [(chart_tag, published_size(emulator, period), "c")]
    assert by_name["airflow.chartsync.sync.rankings_stored"] == [({"chart": SLUG, "change": "created"}, 1, "c")]
    (duration,) = by_name["airflow.chartsync.sync.duration"]
    assert duration[0] == {"chart": SLUG, "status": "success"} and duration[2] == "ms" and duration[1] > 0
    ranking_requests = [(t, v, k) for t, v, k in by_name["airflow.chartsync.soundcharts.requests"]
                        if t["endpoint"] == "ranking"]
    assert ranking_requests == [({"endpoint": "ranking", "status": "200"}, 1, "c")] * 2  # two pages of 100
    assert ({"endpoint": "charts", "status": "200"}, 1, "c") in by_name["airflow.chartsync.soundcharts.requests"]
    assert "airflow.chartsync.soundcharts.retries" not in by_name

    # the gap audit's gauges: one period stored of the history window's expected ones
    engine = af.engine()
    with engine.connect() as conn:
        chart_id = conn.execute(select(chart.c.id).where(chart.c.slug == SLUG)).scalar_one()
        expected = conn.execute(select(func.count()).select_from(chart_expected_period).where(
            chart_expected_period.c.chart_id == chart_id, chart_expected_period.c.expected.is_(True))).scalar()
    assert expected > 300  # a year of daily periods
    assert by_name["airflow.chartsync.chart.missing_periods"] == [(chart_tag, expected - 1, "g")]
    assert by_name["airflow.chartsync.chart.coverage_percent"] == [(chart_tag, round(100 / expected, 2), "g")]
    ((tags, freshness, kind),) = by_name["airflow.chartsync.chart.freshness_seconds"]
    assert tags == chart_tag and kind == "g" and 0 <= freshness < 600


# -- OpenTelemetry ---------------------------------------------------------------------------------------------
class OtlpReceiver:
    """An OTLP/HTTP metrics endpoint: decodes each ExportMetricsServiceRequest it is posted."""

    def __init__(self) -> None:
        self.requests: list[ExportMetricsServiceRequest] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                message = ExportMetricsServiceRequest()
                message.ParseFromString(body)
                receiver.requests.append(message)
                reply = ExportMetricsServiceResponse().SerializeToString()
                self.send_response(200 if self.path == "/v1/metrics" else 404)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def points(self) -> dict[str, dict[tuple, tuple[str, float]]]:
        """chart-sync's instruments: name -> attributes -> (data kind, value of the last export)."""
        found: dict[str, dict[tuple, tuple[str, float]]] = defaultdict(dict)
        for request in self.requests:
            for rm in request.resource_metrics:
                for sm in rm.scope_metrics:
                    for metric in sm.metrics:
                        if not metric.name.startswith("airflow.chartsync."):
                            continue
                        kind = metric.WhichOneof("data")
                        for p in getattr(metric, kind).data_points:
                            attrs = tuple(sorted((a.key, a.value.string_value) for a in p.attributes))
                            if kind in ("sum", "gauge"):
                                value = p.as_int if p.WhichOneof("value") == "as_int" else p.as_double
                            else:  # a histogram: its count (cumulative, like the sums)
                                value = p.count
                            found[metric.name][attrs] = (kind, value)
        return found


@pytest.fixture
def otlp():
    receiver = OtlpReceiver()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


def test_a_sync_sends_its_metrics_to_an_opentelemetry_collector(airflow_sqlite, emulator, otlp):
    af = airflow_sqlite
    af.env.update({"AIRFLOW__METRICS__OTEL_ON": "True", "AIRFLOW__METRICS__OTEL_HOST": "127.0.0.1",
                   "AIRFLOW__METRICS__OTEL_PORT": str(otlp.port), "AIRFLOW__METRICS__OTEL_PREFIX": "airflow",
                   "AIRFLOW__METRICS__OTEL_INTERVAL_MILLISECONDS": "1000",
                   "AIRFLOW__METRICS__LEGACY_NAMES_ON": "False"})
    period = date.today() - timedelta(days=4)
    sync_one_period(af, period)
    points = otlp.points()
    chart_attr = (("chart", SLUG),)

    assert points["airflow.chartsync.sync.entries_written"] == {chart_attr: ("sum", published_size(emulator, period))}
    assert points["airflow.chartsync.sync.rankings_stored"] == {(("change", "created"), ("chart", SLUG)): ("sum", 1)}
    assert points["airflow.chartsync.sync.duration"] == {
        (("chart", SLUG), ("status", "success")): ("exponential_histogram", 1)}
    requests_by_endpoint = points["airflow.chartsync.soundcharts.requests"]
    assert requests_by_endpoint[(("endpoint", "ranking"), ("status", "200"))] == ("sum", 2)
    assert requests_by_endpoint[(("endpoint", "charts"), ("status", "200"))][0] == "sum"
