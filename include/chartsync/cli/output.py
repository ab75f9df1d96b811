"""What a read command prints: rows (one dict each, the same keys in every row) in the format ``-o`` names.

The formats and their look are Airflow's (``airflow ... list -o table|json|yaml|plain``, rendered by
``airflow.cli.simple_table.AirflowConsole``): ``table`` is its rich table (ASCII double-head box, no edge,
200 columns when piped), ``plain`` its tabulate plain table. We render with the same two libraries rather
than import AirflowConsole, whose module imports Airflow itself: 1.3 s of a read command's start against
0.1 s for rich and tabulate (measured with ``python -X importtime``), and the CLI layer imports no
``airflow`` (import-linter). ``json`` and ``yaml`` are for scripts: a list of objects with fixed keys,
numbers and booleans as such, dates and times in ISO 8601, no colour; rich colours a table on a terminal
only.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import Any

FORMATS = ("table", "json", "yaml", "plain")


def scalar(value: Any) -> Any:
    """A value as json and yaml carry it: dates and times in ISO 8601, lists kept, the rest as is."""
    if isinstance(value, date | datetime):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [scalar(v) for v in value]
    return value


def cell(value: Any) -> str:
    """A value in a table cell: lists joined by commas (as Airflow's tables do), nothing for None."""
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return ",".join(cell(v) for v in value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(scalar(value))


def print_as(rows: Iterable[Mapping[str, Any]], output: str, *, empty: str = "No data found") -> None:
    """Print ``rows`` as ``output`` says; ``empty`` is what a table says of no rows (json: ``[]``)."""
    data = [{key: scalar(value) for key, value in row.items()} for row in rows]
    if output == "json":
        print(json.dumps(data, indent=2, ensure_ascii=False))
    elif output == "yaml":
        import yaml  # deferred, as rich and tabulate below: each format loads only its own library

        print(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), end="")
    elif not data:
        print(empty)
    elif output == "plain":
        from tabulate import tabulate

        print(tabulate([[cell(v) for v in row.values()] for row in data], headers=list(data[0]), tablefmt="plain"))
    elif output == "table":
        _print_table(data)
    else:
        raise ValueError(f"unknown output format {output!r} (one of {', '.join(FORMATS)})")


def _print_table(data: list[dict[str, Any]]) -> None:
    from rich.box import ASCII_DOUBLE_HEAD
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 200)  # piped: as wide as Airflow's
    table = Table(box=ASCII_DOUBLE_HEAD, show_edge=False, pad_edge=False)
    for key in data[0]:
        table.add_column(key, overflow="fold")
    for row in data:
        table.add_row(*(cell(v) for v in row.values()))
    console.print(table)
