"""Switchable faults: rate limits, server errors, slowness, bad bodies, late rankings.

A rule is a small JSON object (also accepted by ``POST /__admin/faults``)::

    {"kind": "429", "path_contains": "/ranking/", "count": 2, "retry_after": 1}

- ``kind``: ``429`` | ``500`` | ``slow`` | ``malformed`` | ``unpublished``;
- ``path_contains``: only requests whose path contains this text (default: all);
- ``count``: fire this many times, then disarm (``null`` = forever);
- ``retry_after``: seconds for ``Retry-After`` / ``x-ratelimit-reset`` (429, default 1);
- ``delay``: seconds to sleep before answering (slow, default 1.0);
- ``variant``: ``truncated`` (default: cut JSON text) or ``missing_items``
  (valid JSON without ``items``) for malformed, which only hits 200 answers;
- ``date``: ``YYYY-MM-DD`` ranking date to hide (unpublished).  Without a date,
  an unpublished rule hides each matching chart's newest ranking and makes
  ``ranking/latest`` answer 404.

On the command line the same rule reads ``kind[:key=value,...]``, e.g.
``429:count=2,retry_after=1`` or ``unpublished:date=2026-11-20,path_contains=spotify``
(values cannot contain commas).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
import datetime

KINDS = ("429", "500", "slow", "malformed", "unpublished")
MALFORMED_VARIANTS = ("truncated", "missing_items")
_FOREVER = {"", "none", "null", "forever", "inf"}


@dataclass
class FaultRule:
    kind: str
    path_contains: str | None = None
    count: int | None = None
    retry_after: int = 1
    delay: float = 1.0
    date: datetime.date | None = None
    variant: str = "truncated"
    fired: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"fault kind {self.kind!r} is not one of {', '.join(KINDS)}")
        if self.variant not in MALFORMED_VARIANTS:
            raise ValueError(f"fault variant {self.variant!r} is not one of {MALFORMED_VARIANTS}")
        if (self.count is not None and self.count < 0) or self.retry_after < 0 or self.delay < 0:
            raise ValueError("fault count, retry_after and delay must not be negative")

    @property
    def armed(self) -> bool:
        return self.count is None or self.fired < self.count

    def applies_to(self, path: str) -> bool:
        return self.armed and (not self.path_contains or self.path_contains in path)

    def to_json(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "path_contains": self.path_contains,
            "count": self.count,
            "retry_after": self.retry_after,
            "delay": self.delay,
            "date": self.date.isoformat() if self.date else None,
            "variant": self.variant,
            "fired": self.fired,
            "armed": self.armed,
        }


def rule_from_json(data: Mapping[str, object]) -> FaultRule:
    """A rule from its JSON form; raises ValueError naming the bad field."""
    unknown = set(data) - {"kind", "path_contains", "count", "retry_after", "delay", "date",
                           "variant", "fired", "armed"}
    if unknown:
        raise ValueError(f"unknown fault field(s): {', '.join(sorted(unknown))}")
    fields: dict[str, object] = {"kind": str(data.get("kind", ""))}
    try:
        if data.get("path_contains"):
            fields["path_contains"] = str(data["path_contains"])
        count = data.get("count")
        if count is not None and str(count).lower() not in _FOREVER:
            fields["count"] = int(str(count))
        if data.get("retry_after") is not None:
            fields["retry_after"] = int(str(data["retry_after"]))
        if data.get("delay") is not None:
            fields["delay"] = float(str(data["delay"]))
        if data.get("date"):
            fields["date"] = datetime.date.fromisoformat(str(data["date"]))
        if data.get("variant"):
            fields["variant"] = str(data["variant"])
    except ValueError as exc:
        raise ValueError(f"bad fault rule {dict(data)!r}: {exc}") from exc
    return FaultRule(**fields)  # type: ignore[arg-type]


def parse_fault_spec(spec: str) -> FaultRule:
    """A rule from the command-line form ``kind[:key=value,...]``."""
    kind, _, options = spec.partition(":")
    data: dict[str, object] = {"kind": kind.strip()}
    for option in filter(None, (part.strip() for part in options.split(","))):
        key, sep, value = option.partition("=")
        if not sep:
            raise ValueError(f"fault option {option!r} in {spec!r} is not key=value")
        data[key.strip()] = value.strip()
    return rule_from_json(data)


def to_rule(value: FaultRule | Mapping[str, object] | str) -> FaultRule:
    if isinstance(value, FaultRule):
        return value
    if isinstance(value, str):
        return parse_fault_spec(value)
    return rule_from_json(value)


class FaultBook:
    """The rules of one server, safe to use from its request threads."""

    def __init__(self, rules: Iterable[FaultRule] = ()) -> None:
        self._lock = threading.Lock()
        self._rules = list(rules)

    def add(self, rule: FaultRule) -> None:
        with self._lock:
            self._rules.append(rule)

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def to_json(self) -> list[dict[str, object]]:
        with self._lock:
            return [rule.to_json() for rule in self._rules]

    def active(self, kind: str, path: str) -> list[FaultRule]:
        """Armed rules of ``kind`` matching ``path``, without firing them."""
        with self._lock:
            return [r for r in self._rules if r.kind == kind and r.applies_to(path)]

    def fire(self, rule: FaultRule) -> bool:
        """Count one firing of ``rule``; False when it disarmed meanwhile."""
        with self._lock:
            if not rule.armed:
                return False
            rule.fired += 1
            return True

    def take(self, kind: str, path: str) -> FaultRule | None:
        """Fire and return the first armed rule of ``kind`` matching ``path``."""
        for rule in self.active(kind, path):
            if self.fire(rule):
                return rule
        return None
