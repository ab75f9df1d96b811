"""The DAGs about tracks: track metadata (scheduled on the rankings asset every chart sync emits)
and the on-demand song audience; the work is ``services.track_metadata`` and ``services.audience``."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from airflow.sdk import DAG, Param, task

from chartsync import settings
from chartsync.builders.defaults import RANKINGS_ASSET, default_args
from chartsync.core.outcomes import findings_from_extras
from chartsync.services import audience, track_metadata
from chartsync.soundcharts.client import SoundchartsClient
from chartsync.store.engine import chart_engine

log = logging.getLogger(__name__)


def build_track_metadata_dag():
    """``chart_sync_track_metadata``: runs whenever syncs emit the rankings asset."""
    with DAG(
        dag_id=settings.TRACK_METADATA_DAG_ID,
        description="Fetch Soundcharts song metadata for new and stale (> 30 days) tracks",
        schedule=[RANKINGS_ASSET],
        start_date=datetime(2026, 1, 1, tzinfo=UTC),
        catchup=False,
        max_active_runs=1,  # two runs would fetch the same due tracks
        is_paused_upon_creation=False,  # a paused consumer is not queued by asset events
        default_args=default_args(),
        tags=[settings.TAG, "metadata"],
        doc_md=(
            "# Track metadata\n\nScheduled on the rankings asset every chart sync emits. Fetches "
            "`/api/v2.25/song/{uuid}` for tracks that are new or whose metadata is older than 30 days, on "
            "charts whose schedule has `fetch_track_metadata`, in batches of "
            f"{track_metadata.BATCH_SIZE} inside one task (each batch is written in one transaction after all its songs "
            "were fetched). Counts are credited to the sync execution that found the tracks "
            "(`chart_sync_execution.metadata_created` / `metadata_updated`). Trigger it by hand to sweep "
            "stale tracks now."
        ),
    ) as dag:

        @task(task_id="fetch_track_metadata", multiple_outputs=False)  # one XCom, not one per key
        def fetch_track_metadata(**context: Any) -> dict:
            events = (context.get("triggering_asset_events") or {}).get(RANKINGS_ASSET, [])
            findings = findings_from_extras(event.extra for event in events)
            log.info("%d rankings events name %d sync executions", len(events), len(findings))
            client = SoundchartsClient()
            return track_metadata.refresh_metadata(chart_engine(), client, findings).summary()

        fetch_track_metadata()
    return dag


def build_audience_dag():
    """``chart_sync_audience``: one run per requested song (params ``song_uuid``), never scheduled."""
    with DAG(
        dag_id=settings.AUDIENCE_DAG_ID,
        description="Fetch a song's audience on every supported platform (triggered on demand)",
        schedule=None,
        start_date=datetime(2026, 1, 1, tzinfo=UTC),
        catchup=False,
        max_active_runs=8,
        is_paused_upon_creation=False,  # runs triggered by the song page must not wait for an unpause
        default_args=default_args(),
        tags=[settings.TAG, "audience"],
        params={"song_uuid": Param(type="string", minLength=1, description="Soundcharts song uuid")},
        doc_md=(
            "# Song audience\n\nTriggered by the song page (or `chartsync audience refresh SONG_UUID`) when "
            f"the song's audience is missing or older than {audience.MAX_AGE.days} days; one run per song at a "
            f"time. Fetches the last {audience.WINDOW_DAYS} days on {', '.join(audience.PLATFORMS)} and writes them in one "
            "transaction after every platform answered."
        ),
    ) as dag:

        @task(task_id="fetch_audience", multiple_outputs=False)  # one XCom, not one per key
        def fetch_audience_task(**context: Any) -> dict:
            song_uuid = context["params"]["song_uuid"]
            return audience.refresh_song(chart_engine(), SoundchartsClient(), song_uuid).summary()

        fetch_audience_task()
    return dag
