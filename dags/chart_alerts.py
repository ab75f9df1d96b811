"""Airflow DAGs for chart-sync alerting and housekeeping: the daily alert digest and retention.

Thin on purpose: the logic lives in chartsync.alerts and chartsync.retention.
"""

from chartsync.alerts import build_digest_dag
from chartsync.retention import build_retention_dag

alert_digest = build_digest_dag()
retention = build_retention_dag()
