"""Airflow DAGs for chart-sync alerting and housekeeping: the daily alert digest and retention.

Thin on purpose: the DAGs are built in chartsync.builders, the work is in chartsync.services.
"""

from chartsync.builders.alerts import build_digest_dag
from chartsync.builders.maintenance import build_retention_dag

alert_digest = build_digest_dag()
retention = build_retention_dag()
