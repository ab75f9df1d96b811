"""Airflow DAGs for chart-sync alerting and housekeeping: the daily alert digest and retention.

Thin on purpose: the logic lives in chartsync.services.alerts and chartsync.services.retention.
"""

from chartsync.services.alerts import build_digest_dag
from chartsync.services.retention import build_retention_dag

alert_digest = build_digest_dag()
retention = build_retention_dag()
