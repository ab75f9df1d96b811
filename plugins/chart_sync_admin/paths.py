"""Where Airflow mounts the plugin's app: the one URL prefix the plugin's entry point declares and the
pages strip to find Airflow's own root. A leaf: it imports nothing of the plugin."""

from __future__ import annotations

URL_PREFIX = "/chart-sync"
