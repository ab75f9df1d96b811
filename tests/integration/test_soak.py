"""A small fault soak in the suite: the soak's run and counts (``stacks.soak``; benchmarks/soak.py runs it
at scale) on 3 charts x 8 periods, on a real scheduler, dag-processor, triggerer and api-server with
both DBs on PostgreSQL, while seeded faults hit the ranking requests. The targets are the benchmark's: every published period stored,
no duplicate or partial ranking, Airflow and chart-sync agreeing run by run, and faults injected."""

from __future__ import annotations

import pytest

from stacks import soak

pytestmark = pytest.mark.integration

# The benchmark's faults (10 % of ranking requests 429 / 500 / hang, 1 % malformed) on a smaller load;
# retries after 1, 2 and 4 s keep a malformed answer's retry quick.
LOAD = soak.Load(charts=3, periods=8, seed=11, retry_delay=1, timeout=600)


def test_a_catchup_under_faults_loses_doubles_and_hides_nothing(airflow_postgres, emulator, emulator_admin):
    report = soak.run_soak(LOAD, airflow_postgres, emulator.url)
    print(soak.table(report))
    assert report.misses() == []
    assert report.faults_total > 0, "no fault was injected: the soak proved nothing"
    assert report.runs_expected == 3 * 8 and report.stored_periods == report.expected_periods >= 3 * 8
    assert report.duplicates == 0 and report.partial == 0 and report.disagreements == []
