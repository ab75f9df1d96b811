"""Airflow DAGs about tracks: the track metadata DAG (scheduled on the rankings asset every chart
sync emits) and the on-demand song audience DAG, built in chartsync.builders.tracks."""

from chartsync.builders.tracks import build_audience_dag, build_track_metadata_dag

track_metadata = build_track_metadata_dag()
audience = build_audience_dag()
