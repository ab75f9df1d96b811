"""chartsync.supervisor's hold on its processes (Linux): what a component starts stays in make run's tree when the
component dies, and a component dies with make run. Each case runs in a throw-away supervisor process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import psutil
import pytest

from stacks import ROOT, wait_for

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="prctl: Linux only")


def _supervisor(body: str) -> subprocess.Popen:
    script = "import subprocess, sys, time\nfrom chartsync import supervisor\n" + textwrap.dedent(body)
    return subprocess.Popen([sys.executable, "-c", script], env={**os.environ, "PYTHONPATH": str(ROOT / "include")},
                            stdout=subprocess.PIPE, text=True, start_new_session=True)


def test_an_orphan_is_re_parented_to_the_supervisor_not_init():
    """A component killed with SIGKILL leaves its workers to make run, which can then stop them."""
    sup = _supervisor("""
        supervisor._become_subreaper()
        component = subprocess.Popen(["sh", "-c", "sleep 60 & echo $!; wait"], stdout=subprocess.PIPE, text=True)
        print(component.stdout.readline().strip(), flush=True)  # the component's worker
        component.kill()
        component.wait()
        time.sleep(60)
    """)
    try:
        worker = psutil.Process(int(sup.stdout.readline()))
        assert wait_for(lambda: worker.ppid() == sup.pid, 10, "the worker to be re-parented to the supervisor")
    finally:
        os.killpg(sup.pid, signal.SIGKILL)
        sup.wait()


def test_a_component_gets_sigterm_when_the_supervisor_dies():
    sup = _supervisor("""
        component = subprocess.Popen(["sleep", "60"], preexec_fn=supervisor._die_with_parent, start_new_session=True)
        print(component.pid, flush=True)
        time.sleep(60)
    """)
    component = psutil.Process(int(sup.stdout.readline()))
    try:
        sup.kill()  # SIGKILL: no handler of the supervisor runs
        sup.wait()
        assert wait_for(lambda: not component.is_running() or component.status() == psutil.STATUS_ZOMBIE, 10,
                        "the component to die with its supervisor")
    finally:
        if component.is_running():
            component.kill()


def test_a_scheduler_that_runs_but_reports_unhealthy_is_wedged_only_after_the_grace():
    from chartsync.supervisor import Liveness

    unhealthy, healthy = {"scheduler": {"status": "unhealthy"}}, {"scheduler": {"status": "healthy"}}
    live = Liveness(after=60)
    assert not live.wedged(unhealthy, 0.0) and not live.wedged(unhealthy, 59.0)
    assert not live.wedged(None, 70.0)  # no answer (the api-server or the metadata DB away) proves nothing
    assert live.wedged(unhealthy, 60.0)
    assert not live.wedged(healthy, 61.0) and not live.wedged(unhealthy, 100.0)  # a heartbeat starts it over
    assert live.wedged({"scheduler": {}}, 160.0)  # no status at all is no heartbeat either
    live.reset()  # a restarted scheduler gets the whole grace again
    assert not live.wedged(unhealthy, 161.0) and not live.wedged(unhealthy, 220.0)
