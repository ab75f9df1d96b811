"""A small fault soak in the suite: benchmarks/soak.py's run and counts (3 charts x 8 periods) on a
real scheduler, dag-processor, triggerer and api-server with both DBs on PostgreSQL, while seeded
faults hit the ranking requests. The targets are the benchmark's: every published period stored,
no duplicate or partial ranking, Airflow and chart-sync agreeing run by run, and faults injected."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

# benchmarks/ is no package: load the soak's module from its file (registered first, as dataclasses need)
_spec = importlib.util.spec_from_file_location("benchmarks_soak",
                                               Path(__file__).resolve().parents[2] / "benchmarks" / "soak.py")
soak = sys.modules.setdefault("benchmarks_soak", importlib.util.module_from_spec(_spec))
_spec.loader.exec_module(soak)

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
