"""Maintenance Airflow DAGs of chart-sync (gap audit), built in chartsync.builders.maintenance."""

from chartsync.builders.maintenance import build_gap_audit_dag

gap_audit = build_gap_audit_dag()
