"""What chart-sync reads from ``airflow.cfg``: where the UI is, how often DAG files are parsed."""

from __future__ import annotations

import os


def ui_base_url() -> str:
    """``[api] base_url``: where the Airflow UI (and the chart-sync plugin) is reached."""
    from airflow.sdk.configuration import conf  # deferred, as below: importing this module loads no Airflow

    return conf.get("api", "base_url", fallback="") or ""


def parse_interval_seconds() -> int:
    """How often the dag-processor re-parses a DAG file: when a new chart's DAG appears at the latest."""
    from airflow.sdk.configuration import conf

    return conf.getint("dag_processor", "min_file_process_interval", fallback=30)


ONE_MACHINE_EXECUTORS = {"LocalExecutor", "SequentialExecutor"}


def distributed_executors() -> list[str]:
    """The configured executors that run tasks on other machines (CeleryExecutor, KubernetesExecutor, ...):
    where a file on this machine (a SQLite chart DB) is not the same file a task sees. AIRFLOW__CORE__EXECUTOR,
    when set, is read without loading Airflow's configuration (the chartsync CLI's reads load no Airflow)."""
    configured = os.environ.get("AIRFLOW__CORE__EXECUTOR")
    if configured is None:
        from airflow.sdk.configuration import conf  # deferred: loads Airflow

        configured = conf.get("core", "executor", fallback="") or ""
    names = [name.strip() for name in configured.split(",") if name.strip()]
    return [name for name in names if name.split(":")[-1].rsplit(".", 1)[-1] not in ONE_MACHINE_EXECUTORS]
