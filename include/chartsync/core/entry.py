"""One entry of a ranking as the Soundcharts API publishes it: what the client parses, the quality checks
read and the store writes (one type, so the three cannot drift apart)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RankingEntry:
    song_uuid: str
    song_name: str
    credit_name: str | None
    image_url: str | None
    position: int
    previous_position: int | None
    entry_state: str | None
    time_on_chart: int | None
    time_on_chart_unit: str | None
    metric: int | None
