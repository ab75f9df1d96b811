"""What chart-sync reads from ``airflow.cfg``: where the UI is, how often DAG files are parsed."""

from __future__ import annotations

from airflow.sdk.configuration import conf


def ui_base_url() -> str:
    """``[api] base_url``: where the Airflow UI (and the chart-sync plugin) is reached."""
    return conf.get("api", "base_url", fallback="") or ""


def parse_interval_seconds() -> int:
    """How often the dag-processor re-parses a DAG file: when a new chart's DAG appears at the latest."""
    return conf.getint("dag_processor", "min_file_process_interval", fallback=30)
