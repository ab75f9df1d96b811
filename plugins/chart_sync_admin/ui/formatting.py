"""How the pages show values: the Jinja filters of the templates (``{{ value | ago }}`` ...)."""

from __future__ import annotations

from datetime import UTC, datetime

from chartsync.core.timestamps import as_utc


def fmt_datetime(value: datetime | None) -> str:
    return as_utc(value).strftime("%Y-%m-%d %H:%M UTC") if value else "—"


def fmt_ago(value: datetime | None) -> str:
    if value is None:
        return "never"
    seconds = (datetime.now(UTC) - as_utc(value)).total_seconds()
    return ("in " if seconds < 0 else "") + fmt_age(abs(seconds)) + ("" if seconds < 0 else " ago")


def fmt_age(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}" if seconds < 10 * size else f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} s"


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    return f"{seconds:.2f} s" if seconds < 60 else fmt_age(seconds)


def fmt_percent(rate: float | None) -> str:
    return "—" if rate is None else f"{rate * 100:.1f}%".replace(".0%", "%")


def rate_class(rate: float | None) -> str:
    if rate is None:
        return "rate-none"
    return "rate-good" if rate >= 0.95 else "rate-warn" if rate >= 0.8 else "rate-bad"


def fmt_number(value) -> str:
    return "—" if value is None else f"{value:,}"


def fmt_next_sync(dag) -> str:
    """When Airflow creates the DAG's next run: a catching-up DAG's is already due."""
    if dag is None:
        return "DAG not parsed yet"
    if dag.is_paused:
        return "paused"
    if dag.next_dagrun is None:
        return "—"
    return "due now" if as_utc(dag.next_dagrun) <= datetime.now(UTC) else fmt_ago(dag.next_dagrun)


FILTERS = {"datetime": fmt_datetime, "ago": fmt_ago, "age": fmt_age, "duration": fmt_duration,
           "percent": fmt_percent, "rate_class": rate_class, "number": fmt_number, "next_sync": fmt_next_sync}
