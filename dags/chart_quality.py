"""The Airflow DAG of chart-sync's daily warehouse-wide quality checks of the chart DB, built in
chartsync.builders.quality (the file names "airflow" and "dag": the dag-processor's safe mode skips others)."""

from chartsync.builders.quality import build_quality_check_dag

quality_checks = build_quality_check_dag()
