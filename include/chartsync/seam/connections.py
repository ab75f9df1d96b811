"""Airflow connections and Variables, looked up the way that works in every process chart-sync runs in.

Inside tasks, DAG parsing and the triggerer, the Task SDK asks its supervisor (env vars, secrets
backend, metadata DB). In the ``chartsync`` CLI and the api-server plugin there is no supervisor
and the SDK only sees env vars and external backends, so we fall back to Airflow core's lookup,
which also reads what is stored in the metadata DB (``airflow connections add``,
``chartsync settings load``).
"""

from __future__ import annotations

import logging
import sys

from airflow.sdk import BaseHook, Variable
from airflow.sdk.exceptions import AirflowNotFoundException

log = logging.getLogger(__name__)


def has_supervisor() -> bool:
    """True inside a task (or the triggerer's runner): the SDK's supervisor answers lookups."""
    runner = sys.modules.get("airflow.sdk.execution_time.task_runner")
    return getattr(runner, "SUPERVISOR_COMMS", None) is not None


def get_connection(conn_id: str):
    try:
        return BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        if has_supervisor():
            raise
    from airflow.models.connection import Connection  # deferred: core models are heavy; only the CLI/plugin get here

    return Connection.get_connection_from_secrets(conn_id)


def get_variable(key: str, default: str | None = None) -> str | None:
    """An Airflow Variable, from any process (task, triggerer, CLI, api-server plugin)."""
    value = Variable.get(key, default=None)
    if value is None and not has_supervisor():  # no supervisor: the SDK skips the metadata DB
        try:
            from airflow.models.variable import Variable as CoreVariable  # deferred: as in get_connection

            value = CoreVariable.get(key, default_var=None)
        except Exception as exc:  # no metadata DB configured here
            log.debug("chart-sync: variable %s not readable from the metadata DB: %s", key, exc)
    return default if value is None else value
