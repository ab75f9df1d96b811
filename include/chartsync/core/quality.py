"""The data quality of one fetched ranking (pure): hard checks that reject it before its tracks or
entries are written (so none of it is stored), and soft checks measured and stored with it
(``chart_ranking_quality``).

Hard checks (``check_ranking``, raising ``RankingRejected``): positions unique, songs unique, every
position in 1..the chart's published size. A chart whose size is unknown (no ``maxResultsCount``) is
only held to positions >= 1: nothing says where it ends.

Soft checks (``measure``) flag a ranking that is stored anyway; the thresholds are the ``QUALITY_*``
settings, read at each call (a changed threshold applies to the rankings stored after it):

- ``short``: fewer entries than ``QUALITY_MIN_FILL`` x the published size (not judged without one);
- ``gaps``: holes in 1..the highest position (``missing_positions``);
- ``missing_streams``: on a platform of ``QUALITY_STREAM_PLATFORMS``, more than
  ``QUALITY_MAX_NO_STREAMS_SHARE`` of the entries have no streams (elsewhere not measured: NULL);
- ``churn``: the share of entries new to the chart (trend ``new``: no previous position and not a
  re-entry; a re-entry is a song the chart knows) is above ``QUALITY_CHURN_FACTOR`` x the chart's usual
  share (the mean over its last ``QUALITY_CHURN_HISTORY`` checked rankings before this period) and
  above ``QUALITY_CHURN_MIN_SHARE``; not judged before ``QUALITY_CHURN_MIN_HISTORY`` of them;
- ``previous_mismatch``: of the entries with a previous position (``previous_checked``), those whose
  song was elsewhere or absent in the stored period just before this one (``previous_mismatches``)
  are more than ``QUALITY_MAX_PREVIOUS_MISMATCH_SHARE``. Not judged (NULL, 0 checked) when that period
  is not stored: a gap, a period the API skipped, or one a concurrent catchup run has not stored yet.

Shares are rounded to 4 decimals, so the same ranking in the same surroundings measures the same and a
re-sync leaves its row alone.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date

from chartsync import settings
from chartsync.core.calendar import detect_frequency, next_start
from chartsync.core.entry import RankingEntry
from chartsync.core.trends import NEW, trend

DUPLICATE_POSITIONS, DUPLICATE_SONGS, POSITION_OUT_OF_RANGE = (
    "duplicate_positions", "duplicate_songs", "position_out_of_range")
HARD_CHECKS = (DUPLICATE_POSITIONS, DUPLICATE_SONGS, POSITION_OUT_OF_RANGE)
SHORT, GAPS, MISSING_STREAMS, CHURN, PREVIOUS_MISMATCH = settings.QUALITY_FLAGS
_SHOWN = 10  # offending values named in a rejection; the rest are counted


class RankingRejected(ValueError):
    """A ranking that failed a hard check: none of it may be stored."""

    def __init__(self, label: str, check: str, detail: str) -> None:
        super().__init__(f"{label}: rejected by check {check}: {detail}")
        self.check = check
        self.detail = detail


def check_ranking(label: str, entries: Sequence[RankingEntry], size: int | None) -> None:
    """Raise ``RankingRejected`` (naming the check and the offending values) for the first hard check the
    entries fail; ``label`` names the ranking (``"<slug> <period>"``), ``size`` is the chart's published
    size (``None``: unknown)."""
    positions = [e.position for e in entries]
    repeated = _repeated(positions)
    if repeated:
        raise RankingRejected(label, DUPLICATE_POSITIONS,
                              f"{_plural(repeated, 'position')} {_listed(repeated)} {_appear(repeated)}")
    songs = _repeated([e.song_uuid for e in entries])
    if songs:
        where = {}
        for e in entries:
            if e.song_uuid in songs:
                where.setdefault(e.song_uuid, []).append(e.position)
        named = [f"{song} (positions {', '.join(map(str, sorted(where[song])))})" for song in songs]
        raise RankingRejected(label, DUPLICATE_SONGS, f"{_plural(songs, 'song')} {_listed(named)} {_appear(songs)}")
    if positions and (min(positions) < 1 or (size is not None and max(positions) > size)):
        outside = sorted(p for p in positions if p < 1 or (size is not None and p > size))
        allowed = f"1..{size}" if size is not None else ">= 1 (the chart's size is unknown)"
        raise RankingRejected(label, POSITION_OUT_OF_RANGE,
                              f"{_plural(outside, 'position')} {_listed(outside)} outside {allowed}")


def _repeated(values: list) -> dict:
    """The values seen more than once, with their counts, in the order first seen."""
    if len(set(values)) == len(values):
        return {}  # the usual case, at a set's cost
    return {value: n for value, n in Counter(values).items() if n > 1}


def _plural(values, noun: str) -> str:
    return noun if len(values) == 1 else f"{noun}s"


def _appear(counts: dict) -> str:
    verb = "appears" if len(counts) == 1 else "appear"
    return f"{verb} twice" if set(counts.values()) == {2} else f"{verb} more than once"


def _listed(values) -> str:
    values = [str(v) for v in values]
    more = f" and {len(values) - _SHOWN} more" if len(values) > _SHOWN else ""
    return ", ".join(values[:_SHOWN]) + more


# -- soft checks --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class QualityContext:
    """What the chart DB knows that a ranking's soft checks compare with (read by the period's claim:
    ``store.rankings.claim_period``)."""

    platform: str | None = None
    expected_count: int | None = None  # the chart's published size (chart.max_results)
    frequency: str | None = None  # the chart's, as the API publishes it
    previous_period: date | None = None  # the newest stored period before this one
    previous_positions: Mapping[str, int] = field(default_factory=dict)  # song uuid -> position there (this
    # ranking's songs at least: a song not in it was absent)
    recent_new_shares: Sequence[float] = ()  # new_share of the chart's checked rankings before, newest first


@dataclass(frozen=True)
class RankingQuality:
    """The soft checks of one ranking, as ``chart_ranking_quality`` stores them."""

    entry_count: int
    expected_count: int | None
    missing_positions: int
    no_streams_share: float | None
    new_share: float
    usual_new_share: float | None
    previous_checked: int
    previous_mismatches: int | None
    flags: tuple[str, ...] = ()

    @property
    def flagged(self) -> bool:
        return bool(self.flags)


def measure(period: date, entries: Sequence[RankingEntry], context: QualityContext) -> RankingQuality:
    """The soft checks of the ranking of ``period`` (it passed the hard checks) and the flags it earns."""
    s = settings
    count = len(entries)
    expected = context.expected_count
    # One pass over the entries (the sync path's time is measured: benchmarks/ingest.py).
    highest = without_streams = new = checked = mismatches = 0
    stood = context.previous_positions
    for e in entries:
        if e.position > highest:
            highest = e.position
        if e.metric is None:
            without_streams += 1
        if e.previous_position is None:
            new += trend(e.position, None, e.entry_state) == NEW
        else:
            checked += 1
            mismatches += stood.get(e.song_uuid) != e.previous_position
    missing = highest - count  # positions are unique (check_ranking)
    no_streams = _share(without_streams, count) if context.platform in s.QUALITY_STREAM_PLATFORMS else None
    new_share = _share(new, count)
    history = list(context.recent_new_shares)[:s.QUALITY_CHURN_HISTORY]
    usual = round(sum(history) / len(history), 4) if history and len(history) >= s.QUALITY_CHURN_MIN_HISTORY else None
    if not previous_is_adjacent(context.frequency, context.previous_period, period):
        checked, mismatches = 0, None
    flags = []
    if expected is not None and count < s.QUALITY_MIN_FILL * expected:
        flags.append(SHORT)
    if missing:
        flags.append(GAPS)
    if no_streams is not None and no_streams > s.QUALITY_MAX_NO_STREAMS_SHARE:
        flags.append(MISSING_STREAMS)
    if usual is not None and new_share > s.QUALITY_CHURN_FACTOR * usual and new_share > s.QUALITY_CHURN_MIN_SHARE:
        flags.append(CHURN)
    if mismatches and mismatches / checked > s.QUALITY_MAX_PREVIOUS_MISMATCH_SHARE:
        flags.append(PREVIOUS_MISMATCH)
    return RankingQuality(entry_count=count, expected_count=expected, missing_positions=missing,
                          no_streams_share=no_streams, new_share=new_share, usual_new_share=usual,
                          previous_checked=checked, previous_mismatches=mismatches, flags=tuple(flags))


def previous_is_adjacent(frequency: str | None, previous: date | None, period: date) -> bool:
    """Whether ``previous`` is the period just before ``period`` on the chart's calendar (the one the API's
    previous positions refer to)."""
    return previous is not None and next_start(detect_frequency(frequency), previous) == period


def _share(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0
