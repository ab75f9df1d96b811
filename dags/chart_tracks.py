"""Airflow DAGs about tracks: the track metadata DAG (scheduled on the rankings asset every chart
sync emits) and the on-demand song audience DAG; the logic lives in chartsync.services.track_metadata and
chartsync.services.audience."""

from chartsync.services.audience import build_audience_dag
from chartsync.services.track_metadata import build_track_metadata_dag

track_metadata = build_track_metadata_dag()
audience = build_audience_dag()
