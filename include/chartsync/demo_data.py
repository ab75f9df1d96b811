"""The demo of ``make run``: the charts it imports and the sync schedules it adds, once.

Through the chartsync CLI, as a user would: a second start finds the schedules listed and adds nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable

DEMO_SCHEDULES = (  # one daily, one weekly, one monthly chart, each with a year of history
    ("spotify-top-200-global-daily", "daily"),
    ("spotify-top-200-global-weekly", "weekly"),
    ("apple-music-top-200-us-monthly", "monthly"),
)
PLATFORMS = ("spotify", "apple-music", "shazam", "deezer")


def seed(call: Callable[..., str]) -> None:
    """Import the platforms' charts and add each demo schedule not listed yet; ``call`` runs a command
    (``call("chartsync", "schedules", "list")``) and returns its output."""
    call("chartsync", "charts", "import", *[a for p in PLATFORMS for a in ("--platform", p)])
    existing = _listed_slugs(call("chartsync", "schedules", "list", "-o", "json"))
    for slug, frequency in DEMO_SCHEDULES:
        if slug not in existing:  # a second start resumes: no duplicate schedule
            call("chartsync", "schedules", "add", slug, "--frequency", frequency)


def _listed_slugs(listing: str) -> set[str]:
    """The chart slugs of `chartsync schedules list -o json`."""
    return {row["chart"] for row in json.loads(listing)}
