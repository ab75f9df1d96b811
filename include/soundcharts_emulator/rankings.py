"""Rankings: which songs a chart lists in period ``k``, and how they moved.

A ranking is the top ``chart.size`` songs by *weight*: the song's lifecycle
popularity on the ranking date, times its affinity for the platform (and, for
GLOBAL songs on a country chart, for the country), times a little per-period
log-normal noise.  It depends on nothing but the chart and ``k``, so any period
can be computed directly; movement follows from comparing neighbouring
periods, which keeps ``oldPosition`` in period N equal to the position in N-1.

Entry conventions:

- ``oldPosition``: position in the previous published ranking, ``None`` when
  the song was not in it; ``positionEvolution = oldPosition - position``
  (positive = climbed), 0 when there is no ``oldPosition``;
- ``entryState``: ``NEW`` on the first ever appearance on this chart,
  ``RE_ENTRY`` when back after an absence, else ``UP``/``DOWN``/``SAME``;
- ``timeOnChart``: published periods the song has spent on the chart so far,
  this one included (days for daily charts ``DOC``, weeks or months ``WOC``);
  ``entryDate``: the date of its first appearance on the chart.

``corrupted`` breaks a ranking for the malformed ranking variants of ``faults`` (duplicate
positions or songs, a position past the chart's size, missing entries, a hole, no streams).

Counting periods on chart only looks back to the song's release, at most
``LIFETIME_DAYS``, so the cost of a cold ranking is bounded; computed rankings
are cached.
"""

from __future__ import annotations

import heapq
import math
from functools import lru_cache
from typing import NamedTuple

from soundcharts_emulator.catalog import (
    EPOCH,
    Chart,
    atom,
    get_chart,
    is_skipped,
    period_date,
    period_index,
    previous_period,
)
from soundcharts_emulator.songs import (
    PLATFORM_INDEX,
    POOLS,
    alive_keys,
    lifecycle,
    mix,
    release_date,
    shape,
    song_summary,
    stable_seed,
)

# Noise per frequency: daily charts move a little, monthly ones more.
_SIGMA = {"daily": 0.05, "weekly": 0.09, "monthly": 0.12}
_M64 = (1 << 64) - 1
SHORT_SHARE = 0.715  # the ``short`` variant keeps this share of the entries: 143 of 200
GAP_POSITION = 57  # the ``gap`` variant's missing position


class Entry(NamedTuple):
    key: int
    position: int
    old_position: int | None
    metric: int | None  # None: only in a ``no_streams`` corrupted ranking
    state: str
    first_period: int
    periods_on_chart: int


def _chart(slug: str) -> Chart:
    chart = get_chart(slug)
    if chart is None:
        raise KeyError(slug)
    return chart


@lru_cache(maxsize=8192)
def ranked_keys(slug: str, k: int) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """Song keys of period ``k`` in chart order, with their weights."""
    chart = _chart(slug)
    day = (period_date(chart, k) - EPOCH).days
    platform = PLATFORM_INDEX[chart.platform]
    country = POOLS.index(chart.country_code)
    pools = (0,) if country == 0 else (0, country)
    seed = stable_seed(slug) ^ ((k * 0x9E3779B97F4A7C15) & _M64)
    spread = _SIGMA[chart.frequency] * math.sqrt(3.0)  # z below has variance 1/3
    scored: list[tuple[float, int]] = []
    for pool in pools:
        for key in alive_keys(pool, day):
            life = lifecycle(key)
            weight = life.peak * shape(life, day - life.release) * life.platform_affinity[platform]
            if pool != country:
                weight *= life.country_affinity[country]
            h = mix(seed ^ key)
            z = ((h & 0xFFFF) + (h >> 16 & 0xFFFF) + (h >> 32 & 0xFFFF) + (h >> 48)) / 65536 - 2
            scored.append((weight * math.exp(spread * z), key))
    top = heapq.nlargest(chart.size, scored)
    return tuple(key for _, key in top), tuple(weight for weight, _ in top)


@lru_cache(maxsize=4096)
def ranking_entries(slug: str, k: int) -> tuple[Entry, ...]:
    """The entries of period ``k`` (whether or not it is published)."""
    chart = _chart(slug)
    keys, weights = ranked_keys(slug, k)
    previous = ranked_keys(slug, previous_period(chart, k))[0]
    old_positions = {key: position for position, key in enumerate(previous, start=1)}

    on_chart = dict.fromkeys(keys, 0)
    first_period: dict[int, int] = {}
    oldest = min(period_index(chart, release_date(key)) for key in keys)
    for p in range(oldest, k + 1):
        if is_skipped(chart, p):
            continue
        for key in on_chart.keys() & ranked_keys(slug, p)[0]:
            on_chart[key] += 1
            first_period.setdefault(key, p)

    entries = []
    last_metric = None
    for position, (key, weight) in enumerate(zip(keys, weights, strict=True), start=1):
        metric = int(weight * chart.metric_scale)
        if last_metric is not None and metric >= last_metric:
            metric = last_metric - 1  # strictly decreasing with position
        last_metric = metric
        old = old_positions.get(key)
        if old is None:
            state = "NEW" if on_chart[key] == 1 else "RE_ENTRY"
        else:
            state = "UP" if position < old else "DOWN" if position > old else "SAME"
        entries.append(Entry(key, position, old, metric, state, first_period[key], on_chart[key]))
    return tuple(entries)


def entry_json(chart: Chart, k: int, entry: Entry) -> dict[str, object]:
    """One item of the ranking endpoint."""
    old = entry.old_position
    return {
        "song": song_summary(entry.key),
        "position": entry.position,
        "positionEvolution": 0 if old is None else old - entry.position,
        "metric": entry.metric,
        "entryState": entry.state,
        "entryDate": atom(period_date(chart, entry.first_period)),
        "rankDate": atom(period_date(chart, k)),
        "oldPosition": old,
        "timeOnChart": entry.periods_on_chart,
        "timeOnChartUnit": chart.time_unit,
    }


def corrupted(chart: Chart, entries: tuple[Entry, ...], variant: str) -> tuple[Entry, ...]:
    """``entries`` broken as the malformed ranking ``variant`` says (see ``faults``)."""
    first, *middle, last = entries
    if variant == "duplicate_positions":
        return (first, middle[0]._replace(position=first.position), *middle[1:], last)
    if variant == "duplicate_songs":
        return (first, *middle, last._replace(key=first.key))
    if variant == "position_out_of_range":
        return (first, *middle, last._replace(position=chart.size + 1))
    if variant == "short":
        return entries[: int(len(entries) * SHORT_SHARE)]
    if variant == "gap":
        return tuple(entry for entry in entries if entry.position != GAP_POSITION)
    if variant == "no_streams":
        return tuple(entry._replace(metric=None) for entry in entries)
    raise ValueError(f"no ranking variant {variant!r}")
