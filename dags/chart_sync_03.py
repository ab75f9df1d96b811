"""Chart sync DAGs, shard 3 of 8: the schedules whose slug hashes here (chartsync.builders.chart_dags)."""

from airflow.sdk import get_parsing_context

from chartsync.builders.chart_dags import build_dags

globals().update(build_dags(shard=3, dag_id=get_parsing_context().dag_id))
