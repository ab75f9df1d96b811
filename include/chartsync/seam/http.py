"""The http provider's ``HttpHook``, with the connection lookup that works in every process."""

from __future__ import annotations

from airflow.providers.http.hooks.http import HttpHook

from chartsync.seam.connections import get_connection


class LookupHttpHook(HttpHook):
    """``HttpHook`` whose connection lookup also works outside tasks (CLI, plugin, tests)."""

    @classmethod
    def get_connection(cls, conn_id: str):
        return get_connection(conn_id)
