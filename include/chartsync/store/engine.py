"""Access to the chart warehouse behind the Airflow connection ``chart_db``.

The connection is looked up the Airflow way (metadata DB, secrets backend or an
``AIRFLOW_CONN_CHART_DB`` environment variable); the variable, when set, is read without
importing Airflow, so a command that only reads the chart DB starts fast. ``sqlite`` and
``postgres`` connections are supported; SQLite is the embedded default for local work.
A failed connection or statement carries where the chart DB is (``unreachable``): the CLI
names it in its one-line error.
"""

from __future__ import annotations

import functools
import logging

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, ExceptionContext, make_url
from sqlalchemy.exc import OperationalError

from chartsync.seam.connections import InvalidConnection, connection_from_env, get_connection
from chartsync.settings import CHART_DB_CONN_ID

log = logging.getLogger(__name__)


class ChartDbConfigError(RuntimeError):
    """The ``chart_db`` connection is missing or of a type we cannot use."""


def url_from_connection(conn) -> URL:
    """Translate an Airflow connection (sqlite or postgres) into a SQLAlchemy URL."""
    conn_type = (conn.conn_type or "").lower()
    if conn_type == "sqlite":
        path = conn.host or conn.schema
        if not path:
            raise ChartDbConfigError("chart_db: a sqlite connection needs the database file path as host")
        # deferred: reading airflow.cfg imports Airflow (over a second); only a SQLite chart DB needs it
        from chartsync.seam.config import distributed_executors

        if remote := distributed_executors():
            raise ChartDbConfigError(
                f"chart_db: a SQLite file is one machine's, but {', '.join(remote)} runs tasks on other machines "
                "(each would write its own chart DB); use a postgres connection")
        return URL.create("sqlite+pysqlite", database=path)
    if conn_type in {"postgres", "postgresql"}:
        return URL.create(
            "postgresql+psycopg2",
            username=conn.login or None,
            password=conn.password or None,
            host=conn.host or None,
            port=conn.port or None,
            database=conn.schema or None,
        )
    raise ChartDbConfigError(f"chart_db: unsupported connection type {conn.conn_type!r} (use sqlite or postgres)")


def chart_db_url(conn_id: str = CHART_DB_CONN_ID) -> URL:
    try:
        conn = connection_from_env(conn_id) or get_connection(conn_id)
    except InvalidConnection as exc:
        raise ChartDbConfigError(f"connection {conn_id!r}: {exc}") from exc
    except Exception as exc:  # AirflowNotFoundException and friends
        raise ChartDbConfigError(f"connection {conn_id!r} is not defined: {exc}") from exc
    return url_from_connection(conn)


def location(url: URL | str) -> str:
    """Where a chart DB is, for a message: the file, or host:port/database; never the password."""
    url = make_url(url)
    if url.get_backend_name() == "sqlite":
        return url.database or ":memory:"
    return f"{url.host or 'localhost'}:{url.port or 5432}/{url.database or ''}"


def unreachable(exc: BaseException) -> str | None:
    """The chart DB a failed connection or statement was for (``chart_db at 127.0.0.1:5432/chart``),
    or None when the error is not a chart DB's (Airflow's metadata DB has its own engines)."""
    return getattr(exc, "chart_db", None)


def _name_the_database(name: str, url: str):
    where = f"{name} at {location(url)}"

    def on_error(context: ExceptionContext) -> None:
        if isinstance(context.sqlalchemy_exception, OperationalError):
            context.sqlalchemy_exception.chart_db = where

    return on_error


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")  # readers (UI, CLI) never block the sync tasks
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


@functools.cache
def engine_for_url(url: str, name: str = CHART_DB_CONN_ID) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        engine = _postgres_engine(url)
    event.listen(engine, "handle_error", _name_the_database(name, url))
    return engine


def _postgres_engine(url: str) -> Engine:
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=2,
        max_overflow=4,
        connect_args={"connect_timeout": 10, "options": "-c statement_timeout=60000"},
    )


def chart_engine(conn_id: str = CHART_DB_CONN_ID) -> Engine:
    """The engine for the chart DB (one per URL per process)."""
    return engine_for_url(chart_db_url(conn_id).render_as_string(hide_password=False), conn_id)
