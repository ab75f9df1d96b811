"""The code that starts real servers for tests and benchmarks: PostgreSQL (``postgres``), Airflow homes
and their processes (``airflow``), the alert channels' receivers (``receivers``), and the process helpers
(``processes``). Fixtures in tests/conftest.py start them only when a test asks; benchmarks import them
directly (``sys.path`` holds ``tests``)."""

from __future__ import annotations

from stacks.airflow import (
    AirflowEnv,
    AirflowServices,
    finish_catchups,
    make_airflow_env,
    soundcharts_conn,
    start_airflow,
    stop_airflow,
    wait_for_next_run,
)
from stacks.postgres import Postgres, metadata_database, session_postgres, start_postgres
from stacks.processes import ARTIFACTS, BIN, ROOT, free_port, wait_for
from stacks.receivers import AlertReceiver, Received, SmtpReceiver, alert_channel_env

__all__ = [
    "ARTIFACTS", "BIN", "ROOT", "AirflowEnv", "AirflowServices", "AlertReceiver", "Postgres", "Received",
    "SmtpReceiver", "alert_channel_env", "finish_catchups", "free_port", "make_airflow_env", "metadata_database",
    "session_postgres", "soundcharts_conn", "start_airflow", "start_postgres", "stop_airflow", "wait_for",
    "wait_for_next_run",
]
