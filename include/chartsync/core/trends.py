"""Trend of a ranking entry against the previous period (pure)."""

from __future__ import annotations

NEW, RE_ENTRY, UP, DOWN, SAME = "new", "re-entry", "up", "down", "same"
TRENDS = (NEW, RE_ENTRY, UP, DOWN, SAME)


def trend(position: int, previous_position: int | None, entry_state: str | None = None) -> str:
    state = (entry_state or "").upper().replace("-", "_")
    if state in ("RE_ENTRY", "REENTRY"):
        return RE_ENTRY
    if previous_position is None:
        return NEW
    if position < previous_position:
        return UP
    if position > previous_position:
        return DOWN
    return SAME


def weeks_on_chart(time_on_chart: int | None, unit: str | None) -> int | None:
    """Weeks on chart from the API's ``timeOnChart``; DOC counts days, WOC weeks."""
    if time_on_chart is None:
        return None
    if (unit or "").upper() == "DOC":
        return max(1, -(-time_on_chart // 7))
    return time_on_chart
