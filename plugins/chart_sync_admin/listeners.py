"""chart-sync's Airflow listeners: every failed try of a chart DAG reaches chart-sync.

Registered by the plugin (``listeners = [this module]``). Each hook turns Airflow's objects into
plain values (``seam.task_failures.FailedTry``) and hands them to ``services.failures``, which writes
the try's failed execution row and raises the final failure's alert, once. Where Airflow 3.3.2
calls the hooks (checked in the installed source):

- ``on_task_instance_failed`` (the task instance is ``failed`` or ``up_for_retry``):
  - the task process, after the body raised (``sdk/execution_time/task_runner.py::finalize``);
  - the scheduler, for a running try that ended without telling (an executor event, a heartbeat
    timeout: ``models/taskinstance.py::fetch_handle_failure_context``);
  - the api-server, for a task instance or a run marked failed by hand
    (``api_fastapi/core_api/services/public/task_instances.py``, ``.../dag_run.py``).
- ``on_dag_run_failed`` / ``on_dag_run_success``: the scheduler (``models/dagrun.py::update_state``)
  and the api-server (a run's state set by hand). The run's tries are checked against Airflow's
  metadata DB: a try whose task process was killed is reported by its supervisor through the
  execution API, and no hook may run for it.
- ``on_dag_run_running``: only starts the scheduler's reconciler (below).

The scheduler's reconciler also drives healing: each pass starts the next queued gap range of a
chart whose heal backfill Airflow has completed (``services.gaps.advance_heals``).

In a task process the work is done in the hook (the chart DB is the task's own). Elsewhere it goes
to one background thread per process: the scheduler calls hooks inside its own database session,
and looking up a connection or Variable from the metadata DB there (``provide_session``) would
commit and close that session under it. In the scheduler the same thread is the reconciler: every
``CHARTSYNC_RECONCILE_SECONDS`` (60) it records what Airflow failed in the last days and chart-sync
has not seen, so a failure that happened while the chart DB was down is recorded once it is back.

A hook never raises into Airflow: a chart DB problem is logged, and the reconciliation makes up for it.
"""

from __future__ import annotations

import importlib
import logging
import os
import queue
import sys
import threading
import time
import weakref
from dataclasses import replace
from datetime import UTC, datetime

from airflow.listeners import hookimpl

from chartsync.seam.connections import has_supervisor
from chartsync.seam.task_failures import FailedTry, from_task_instance
from chartsync.settings import DAG_ID_PREFIX, RECONCILE_SETTLE

log = logging.getLogger(__name__)

WHOLE_RUN = datetime(2000, 1, 1, tzinfo=UTC)  # a finished run's tries: all of them


def _is_chart_dag(dag_id: str | None) -> bool:
    return bool(dag_id) and dag_id.startswith(DAG_ID_PREFIX)


def _process() -> str:
    """Which Airflow component runs this hook (task processes are forks of the scheduler's workers)."""
    if has_supervisor():
        return "task"
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    return command if command in ("scheduler", "api-server", "dag-processor") else "airflow"


# -- hooks ------------------------------------------------------------------------------------------
@hookimpl
def on_task_instance_failed(previous_state, task_instance, error) -> None:
    try:
        if not _is_chart_dag(getattr(task_instance, "dag_id", None)):
            return
        where = _process()
        failed = from_task_instance(task_instance, error, seen_by=f"{where} listener")
        if failed is None:
            return
        if where == "task":
            record(failed)
        else:
            _worker().submit(("try", failed))
    except Exception:
        log.exception("chart-sync: on_task_instance_failed listener")


# what chart-sync's tasks and DAG files import: the DAG factory, the sync and metadata services, the
# Soundcharts client and the database driver
TASK_MODULES = ("psycopg2", "sqlalchemy.dialects.postgresql.psycopg2", "chartsync.builders.chart_dags",
                "chartsync.builders.tracks", "chartsync.services.sync", "chartsync.soundcharts.client")


def preload() -> None:
    for name in TASK_MODULES:
        importlib.import_module(name)


@hookimpl
def on_starting(component) -> None:
    """In the scheduler and the dag-processor, before they fork (the LocalExecutor's workers, which
    fork every task process; a parsing process per DAG file): import ``TASK_MODULES`` once, so that no
    task and no parse pays for them again: about a second a task, at every period of a catchup
    (benchmarks/catchup.py), and a tenth of a second per DAG file parse (benchmarks/parse.py).
    Imports only: no thread, no connection is made before the fork."""
    where = _process()
    if where not in ("scheduler", "dag-processor"):
        return
    try:
        preload()
    except Exception:
        log.exception("chart-sync: preloading the task modules (tasks import them themselves)")
        return
    log.info("chart-sync: the %s imported the DAG factory and the task modules: its forks inherit them", where)


@hookimpl
def on_dag_run_failed(dag_run, msg) -> None:
    _run_ended(dag_run)


@hookimpl
def on_dag_run_success(dag_run, msg) -> None:
    _run_ended(dag_run)


@hookimpl
def on_dag_run_running(dag_run, msg) -> None:
    try:
        _worker()  # the scheduler's reconciler starts with its first run (its executors have forked by then)
    except Exception:
        log.exception("chart-sync: DAG run listener")


@hookimpl
def before_stopping(component) -> None:
    if _the_worker is not None:
        _the_worker.stop.set()


def _run_ended(dag_run) -> None:
    try:
        worker = _worker()
        if _is_chart_dag(dag_run.dag_id):
            worker.submit(("run", dag_run.dag_id, dag_run.run_id))
    except Exception:
        log.exception("chart-sync: DAG run listener")


# -- the work ---------------------------------------------------------------------------------------
def record(failed: FailedTry) -> None:
    """One failed try into chart-sync (``services.failures.record_airflow_failure``)."""
    from chartsync.services import failures  # deferred: every Airflow process imports the plugin

    try:
        failures.record_airflow_failure(_chart_engine(), failed)
    except Exception as exc:
        log.warning("chart-sync: could not record %s %s try %s (%s) now: %s; the reconciliation with Airflow "
                    "records it", failed.dag_id, failed.run_id, failed.try_number, failed.state, exc)


def check_run(dag_id: str, run_id: str) -> None:
    """A chart DAG run ended: record any of its tries Airflow failed that chart-sync has not seen."""
    from chartsync.services import failures  # deferred: every Airflow process imports the plugin

    try:
        failures.reconcile_from_airflow(_chart_engine(), since=WHOLE_RUN, dag_id=dag_id, run_id=run_id,
                                        settle=RECONCILE_SETTLE)
    except Exception as exc:
        log.warning("chart-sync: could not check the tries of %s %s now: %s; the reconciliation with Airflow "
                    "records them", dag_id, run_id, exc)


def advance_heals() -> None:
    """Start each chart's next queued heal range whose backfill before it Airflow has completed
    (``services.gaps.advance_heals``; Airflow marks a backfill complete every 30 s)."""
    from chartsync.services import gaps  # deferred: every Airflow process imports the plugin

    for started in gaps.advance_heals(_chart_engine()):
        log.info("chart-sync: %s: %s", started.dag_id, started.message)


def with_run_dates(failed: FailedTry) -> FailedTry:
    """The run's dates from the metadata DB when the task instance did not carry them (api-server)."""
    if failed.logical_date is not None or failed.data_interval_end is not None:
        return failed
    from chartsync.seam import orchestration  # deferred: Airflow's core models, only outside tasks

    try:
        logical_date, interval_end = orchestration.run_dates(failed.dag_id, failed.run_id)
    except Exception as exc:
        log.debug("chart-sync: dates of %s %s unknown: %s", failed.dag_id, failed.run_id, exc)
        return failed
    return replace(failed, logical_date=logical_date, data_interval_end=interval_end)


_engines = weakref.WeakSet()  # the chart DB engines this process used here


def _chart_engine():
    from chartsync.store.engine import chart_engine  # deferred: every Airflow process imports the plugin

    engine = chart_engine()
    _engines.add(engine)
    return engine


def _forget_connections_in_child() -> None:
    """A forked child (the scheduler forks task workers) must not share the parent's pooled connections."""
    for engine in list(_engines):
        engine.dispose(close=False)


os.register_at_fork(after_in_child=_forget_connections_in_child)


# -- the background thread (and the scheduler's reconciler) ----------------------------------------
class Worker(threading.Thread):
    """Does the hooks' work off Airflow's threads; with ``reconcile_every``, also reconciles with
    Airflow's state that often (``services.failures.reconcile_from_airflow``: bounded, idempotent)."""

    def __init__(self, reconcile_every: float | None) -> None:
        super().__init__(name="chart-sync-failures", daemon=True)
        self.reconcile_every = reconcile_every
        self.stop = threading.Event()
        self.items: queue.SimpleQueue = queue.SimpleQueue()
        self._last_error: tuple[str, float] | None = None

    def submit(self, item: tuple) -> None:
        self.items.put(item)

    def run(self) -> None:
        next_pass = time.monotonic() + (self.reconcile_every or 0)
        while not self.stop.is_set():
            wait = max(next_pass - time.monotonic(), 0) if self.reconcile_every else 5.0
            try:
                item = self.items.get(timeout=wait)
            except queue.Empty:
                if self.reconcile_every:
                    self.reconcile()
                    next_pass = time.monotonic() + self.reconcile_every
                continue
            try:
                if item[0] == "try":
                    record(with_run_dates(item[1]))
                else:
                    check_run(item[1], item[2])
            except Exception:
                log.exception("chart-sync: failure listener work %s", item[0])

    def reconcile(self) -> None:
        from chartsync.services import failures  # deferred: every Airflow process imports the plugin

        try:
            failures.reconcile_from_airflow(_chart_engine(), settle=RECONCILE_SETTLE)
            advance_heals()
            if self._last_error is not None:
                log.warning("chart-sync: the chart DB answers again; reconciliation with Airflow resumed")
            self._last_error = None
        except Exception as exc:  # the chart DB (or the metadata DB) is down: try again next time
            text, now = f"{type(exc).__name__}: {exc}", time.monotonic()
            if self._last_error is None or self._last_error[0] != text or now - self._last_error[1] > 600:
                log.warning("chart-sync: reconciliation with Airflow failed (%s); retrying every %.0f s",
                            text.splitlines()[0][:300], self.reconcile_every)
                self._last_error = (text, now)


_the_worker: Worker | None = None
_worker_lock = threading.Lock()


def _worker() -> Worker:
    """This process's worker thread, started on first use; in the scheduler it also reconciles."""
    global _the_worker
    if _the_worker is None or not _the_worker.is_alive():
        with _worker_lock:
            if _the_worker is None or not _the_worker.is_alive():
                from chartsync.settings import reconcile_interval  # deferred: as in record()

                every = reconcile_interval() if _process() == "scheduler" else None
                _the_worker = Worker(every)
                _the_worker.start()
                if every:
                    log.info("chart-sync: reconciling failed tries with Airflow every %.0f s", every)
    return _the_worker
