"""What the Soundcharts API answers, as typed values, and the parsing of its items."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from chartsync.core.entry import RankingEntry
from chartsync.soundcharts.errors import SoundchartsMalformedResponse


@dataclass(frozen=True)
class ChartInfo:
    slug: str
    name: str
    platform: str
    frequency: str | None
    country_code: str | None
    max_results: int | None


@dataclass(frozen=True)
class Ranking:
    slug: str
    ranking_date: str  # ATOM datetime as published
    entries: list[RankingEntry]

    @property
    def period(self) -> date:
        return parse_atom(self.ranking_date).date()


@dataclass(frozen=True)
class SongMetadata:
    uuid: str
    name: str
    credit_name: str | None
    isrc: str | None
    artists: list[dict[str, Any]]
    release_date: date | None
    duration_seconds: int | None
    explicit: bool | None
    genres: list[dict[str, Any]]
    labels: list[dict[str, Any]]
    language_code: str | None


@dataclass(frozen=True)
class AudiencePoint:
    day: date
    value: int | None


def parse_atom(value: str) -> datetime:
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (AttributeError, ValueError) as exc:
        raise SoundchartsMalformedResponse(f"not an ATOM datetime: {value!r}") from exc


def atom_for(day: date) -> str:
    return f"{day.isoformat()}T00:00:00+00:00"


def chart_info(item: Any) -> ChartInfo:
    if not isinstance(item, dict) or not item.get("slug"):
        raise SoundchartsMalformedResponse(f"chart item without slug: {item!r}")
    return ChartInfo(
        slug=item["slug"],
        name=item.get("name") or item["slug"],
        platform=item.get("platform") or "",
        frequency=item.get("frequency"),
        country_code=item.get("countryCode"),
        max_results=item.get("maxResultsCount"),
    )


def ranking_entry(item: Any, path: str) -> RankingEntry:
    try:
        song = item["song"]
        position = int(item["position"])
        if not song["uuid"] or not song["name"]:  # a position outside the chart: core.quality's named check
            raise ValueError("empty song")
        old = item.get("oldPosition")
        return RankingEntry(
            song_uuid=str(song["uuid"]),
            song_name=str(song["name"]),
            credit_name=song.get("creditName"),
            image_url=song.get("imageUrl"),
            position=position,
            previous_position=int(old) if old else None,
            entry_state=item.get("entryState"),
            time_on_chart=item.get("timeOnChart"),
            time_on_chart_unit=item.get("timeOnChartUnit"),
            metric=int(item["metric"]) if item.get("metric") is not None else None,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise SoundchartsMalformedResponse(f"{path}: bad ranking item ({exc}): {str(item)[:200]}") from exc
