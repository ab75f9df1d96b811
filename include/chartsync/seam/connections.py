"""Airflow connection lookup that works in every process chart-sync runs in.

Inside tasks and DAG parsing, the Task SDK asks the supervisor (env vars, secrets backend,
metadata DB). In the ``chartsync`` CLI and the api-server plugin there is no supervisor and
the SDK only sees env vars and external backends, so we fall back to Airflow core's lookup,
which also reads connections stored in the metadata DB (``airflow connections add``,
``chartsync settings load``).
"""

from __future__ import annotations

import sys


def _in_task_context() -> bool:
    runner = sys.modules.get("airflow.sdk.execution_time.task_runner")
    return getattr(runner, "SUPERVISOR_COMMS", None) is not None


def get_connection(conn_id: str):
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        return BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        if _in_task_context():
            raise
    from airflow.models.connection import Connection

    return Connection.get_connection_from_secrets(conn_id)
