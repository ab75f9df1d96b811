"""The Soundcharts hook: the http provider's ``HttpHook`` on the ``soundcharts_default`` connection.

The connection (http) holds the base URL as host, the ``x-app-id`` as login and the ``x-api-key``
as password. Its lookup works in tasks, the CLI and the api-server plugin alike
(``seam.http.LookupHttpHook``).
"""

from __future__ import annotations

from chartsync.seam.http import LookupHttpHook
from chartsync.settings import SOUNDCHARTS_CONN_ID


class SoundchartsHook(LookupHttpHook):
    default_conn_name = SOUNDCHARTS_CONN_ID
