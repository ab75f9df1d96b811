"""One sync DAG per scheduled chart, built from the chart_sync_schedule table (chartsync.builders.chart_dags)."""

from airflow.sdk import get_parsing_context

from chartsync.builders.chart_dags import build_dags

globals().update(build_dags(get_parsing_context().dag_id))
