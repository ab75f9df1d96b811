"""The database driver's own cursor, for the write path's plain SQL on PostgreSQL (``store.rankings``,
``store.quality``): SQLAlchemy's compiling of those statements and its handling of their parameters and
rows cost more than the database's work on them (``benchmarks/ingest.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError


@contextmanager
def driver_cursor(conn: Connection, what: str) -> Iterator:
    """The driver's own cursor on the connection, its errors raised as SQLAlchemy's (IntegrityError...)."""
    try:
        with conn.connection.cursor() as cursor:
            yield cursor
    except conn.dialect.loaded_dbapi.Error as exc:
        raise DBAPIError.instance(what, None, exc, conn.dialect.loaded_dbapi.Error) from exc
