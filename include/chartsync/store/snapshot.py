"""The last-known-good copy of the schedule rows, so a chart DB outage never makes DAGs vanish.

One JSON file per DAG file shard and machine (``settings.snapshot_path``): every dag-processor
writes a shard's copy after reading that shard's rows, and reads it back when the chart DB cannot
be read. Rows are stored as lists under one list of column names: a parse writes its copy every
time, and lists cost a third of what dicts cost to encode.
"""

from __future__ import annotations

import json
import logging
from datetime import date, datetime
from types import SimpleNamespace
from typing import Any

from chartsync.settings import snapshot_path

log = logging.getLogger(__name__)


def write(shard: int, rows: list[Any]) -> None:
    """Keep the shard's rows; an unchanged copy is left alone (a parse comes every 30 s, and a rename
    costs more than the comparison)."""
    path = snapshot_path(shard)
    columns = list(rows[0]._fields) if rows else []
    text = json.dumps({"columns": columns, "rows": [list(r) for r in rows]}, default=_json_default)
    try:
        if path.is_file() and path.read_text() == text:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(path)
    except OSError as exc:
        log.warning("chart-sync: cannot write the schedule snapshot %s: %s", path, exc)


def read(shard: int, slug: str | None = None) -> list[Any]:
    """The shard's rows in the snapshot (only ``slug``'s when given); empty when there is none."""
    try:
        raw = json.loads(snapshot_path(shard).read_text())
        columns, values = raw["columns"], raw["rows"]
    except (OSError, ValueError, TypeError, KeyError):
        return []
    rows = []
    for item in (dict(zip(columns, v, strict=True)) for v in values):
        if slug is None or item.get("slug") == slug:
            item["history_start"] = date.fromisoformat(item["history_start"]) if item.get("history_start") else None
            rows.append(SimpleNamespace(**item))
    return rows


def _json_default(value: Any) -> str:
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    raise TypeError(type(value).__name__)
