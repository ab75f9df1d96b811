"""Request latency sampling shared by the HTTP benchmarks (api.py, ui.py)."""

from __future__ import annotations

import statistics
import time

import requests


def timings(session: requests.Session, url: str, count: int, warmup: int = 3) -> list[float]:
    """Milliseconds per GET of ``url`` after ``warmup`` unmeasured requests; any non-200 aborts."""
    for _ in range(warmup):
        _get(session, url)
    times = []
    for _ in range(count):
        start = time.perf_counter()
        _get(session, url)
        times.append((time.perf_counter() - start) * 1000)
    return times


def _get(session: requests.Session, url: str) -> None:
    response = session.get(url, timeout=120, allow_redirects=False)
    if response.status_code != 200:
        raise AssertionError(f"{url}: {response.status_code} {response.text[:300]}")


def p(values: list[float], q: int) -> float:
    """The q-th percentile."""
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]
