"""The last-known-good copy of the schedule rows, so a chart DB outage never makes DAGs vanish.

A JSON file per machine (``settings.snapshot_path``): every dag-processor writes its own after
a full read of the config table, and reads it back when the chart DB cannot be read.
"""

from __future__ import annotations

import json
import logging
from datetime import date, datetime
from types import SimpleNamespace
from typing import Any

from chartsync.settings import snapshot_path

log = logging.getLogger(__name__)


def write(rows: list[Any]) -> None:
    path = snapshot_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps([dict(r._mapping) for r in rows], default=_json_default))
        tmp.replace(path)
    except OSError as exc:
        log.warning("chart-sync: cannot write the schedule snapshot %s: %s", path, exc)


def read(slug: str | None) -> list[Any]:
    """The rows of the snapshot (only ``slug``'s when given); empty when there is none."""
    try:
        raw = json.loads(snapshot_path().read_text())
    except (OSError, ValueError):
        return []
    rows = []
    for item in raw:
        if slug is None or item.get("slug") == slug:
            item["history_start"] = date.fromisoformat(item["history_start"]) if item.get("history_start") else None
            rows.append(SimpleNamespace(**item))
    return rows


def _json_default(value: Any) -> str:
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    raise TypeError(type(value).__name__)
