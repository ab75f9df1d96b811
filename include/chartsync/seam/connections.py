"""Airflow connections and Variables, looked up the way that works in every process chart-sync runs in.

Inside tasks, DAG parsing and the triggerer, the Task SDK asks its supervisor (env vars, secrets
backend, metadata DB). In the ``chartsync`` CLI and the api-server plugin there is no supervisor
and the SDK only sees env vars and external backends, so we fall back to Airflow core's lookup,
which also reads what is stored in the metadata DB (``airflow connections add``,
``chartsync settings load``).

``connection_from_env`` reads an ``AIRFLOW_CONN_<ID>`` variable (URI or JSON) the way Airflow parses
it, without importing Airflow (about 1.3 s): the chart DB's engine asks it first, so a ``chartsync``
read of the chart DB starts in a fraction of that.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import dataclass
from urllib.parse import SplitResult, parse_qsl, unquote, urlsplit

log = logging.getLogger(__name__)


class InvalidConnection(ValueError):
    """An ``AIRFLOW_CONN_<ID>`` value Airflow would not parse either."""


@dataclass(frozen=True)
class EnvConnection:
    """The fields of an Airflow connection, as ``airflow.models.Connection`` parses them."""

    conn_id: str
    conn_type: str | None
    host: str | None = None
    schema: str | None = None
    login: str | None = None
    password: str | None = None
    port: int | None = None
    extra: str | None = None


def has_supervisor() -> bool:
    """True inside a task (or the triggerer's runner): the SDK's supervisor answers lookups."""
    runner = sys.modules.get("airflow.sdk.execution_time.task_runner")
    return getattr(runner, "SUPERVISOR_COMMS", None) is not None


def get_connection(conn_id: str):
    # deferred, as the imports in get_variable: Airflow's import takes seconds, and connection_from_env's
    # callers (the CLI's reads) get here only when no AIRFLOW_CONN_<ID> is set
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        return BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        if has_supervisor():
            raise
    from airflow.models.connection import Connection  # core models are heavy; only the CLI/plugin get here

    return Connection.get_connection_from_secrets(conn_id)


def connection_from_env(conn_id: str) -> EnvConnection | None:
    """The connection ``AIRFLOW_CONN_<ID>`` defines (a URI, or JSON when it starts with ``{``), parsed
    as Airflow parses it; None when the variable is not set. Airflow's own lookup reads the same
    variable (after a secrets backend, when one is configured)."""
    value = os.environ.get(f"AIRFLOW_CONN_{conn_id.upper()}", "").strip()
    if not value:
        return None
    try:
        return _from_json(conn_id, value) if value.startswith("{") else _from_uri(conn_id, value)
    except (ValueError, TypeError) as exc:  # JSONDecodeError, a bad port
        raise InvalidConnection(f"AIRFLOW_CONN_{conn_id.upper()}: not a connection URI or JSON: {exc}") from None


# -- Airflow's parsing (airflow.models.connection.Connection._parse_from_uri and from_json) -------------------
def _conn_type(conn_type: str | None) -> str | None:
    if conn_type == "postgresql":
        return "postgres"
    return conn_type.replace("-", "_") if conn_type else conn_type


def _hostname(parts: SplitResult) -> str:
    hostname = unquote(parts.hostname or "")
    if "/" in hostname:  # urlsplit lower-cases the host and cuts it at a slash: Airflow takes the netloc
        hostname = parts.netloc.rsplit("@", 1)[-1].split(":", 1)[0]
        hostname = unquote(hostname)
    return hostname


def _from_uri(conn_id: str, uri: str) -> EnvConnection:
    schemes = uri.count("://")
    if schemes > 2:
        raise ValueError("more than two '://'")
    scheme = urlsplit(uri).scheme
    rest = uri.replace(f"{scheme}://", "" if schemes == 2 else "//")
    if schemes == 2 and ("@" in rest.split("://", 1)[0] or ":" in rest.split("://", 1)[0]):
        raise ValueError("a host protocol with a login or port before it")
    parts = urlsplit(rest)
    host = _hostname(parts)
    if host and schemes == 2:
        host = f"{parts.scheme}://{host}"
    quoted_schema = parts.path[1:]
    extra = None
    if parts.query:
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        if "__extra__" in query:
            extra = query["__extra__"]
        else:
            for key, value in query.items():
                try:
                    query[key] = json.loads(value) if value else value
                except ValueError:
                    pass
            extra = json.dumps(query)
    return EnvConnection(
        conn_id, _conn_type(scheme), host=host, schema=unquote(quoted_schema) if quoted_schema else quoted_schema,
        login=unquote(parts.username) if parts.username else parts.username,
        password=unquote(parts.password) if parts.password else parts.password, port=parts.port, extra=extra)


def _from_json(conn_id: str, value: str) -> EnvConnection:
    fields = json.loads(value)
    extra = fields.get("extra")
    port = fields.get("port")
    return EnvConnection(
        conn_id, _conn_type(fields.get("conn_type")), host=fields.get("host"), schema=fields.get("schema"),
        login=fields.get("login"), password=fields.get("password"), port=int(port) if port else None,
        extra=(extra if isinstance(extra, str) else json.dumps(extra)) if extra else None)


def get_variable(key: str, default: str | None = None) -> str | None:
    """An Airflow Variable, from any process (task, triggerer, CLI, api-server plugin)."""
    from airflow.sdk import Variable  # deferred: as in get_connection

    value = Variable.get(key, default=None)
    if value is None and not has_supervisor():  # no supervisor: the SDK skips the metadata DB
        try:
            from airflow.models.variable import Variable as CoreVariable

            value = CoreVariable.get(key, default_var=None)
        except Exception as exc:  # no metadata DB configured here
            log.debug("chart-sync: variable %s not readable from the metadata DB: %s", key, exc)
    return default if value is None else value
