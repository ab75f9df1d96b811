"""Switchable faults: rate limits, server errors, slowness, hangs, bad bodies, bad rankings, late rankings.

A rule is a small JSON object (also accepted by ``POST /__admin/faults``)::

    {"kind": "429", "path_contains": "/ranking/", "count": 2, "retry_after": 1}
    {"kind": "500", "path_contains": "/ranking/", "rate": 0.1}

- ``kind``: ``429`` | ``500`` | ``slow`` | ``hang`` | ``malformed`` | ``unpublished``;
- ``path_contains``: only requests whose path contains this text (default: all);
- ``count``: fire this many times, then disarm (``null`` = forever);
- ``rate``: hit each matching request with this probability (``0 < rate <= 1``;
  ``null`` = every one).  With ``count`` too, the rule disarms after ``count``
  hits.  Not for ``unpublished``, which hides periods rather than requests;
- ``retry_after``: seconds for ``Retry-After`` / ``x-ratelimit-reset`` (429, default 1);
- ``delay``: seconds to wait before answering (slow, default 1.0), or to hold the
  request before dropping the connection without any answer (hang, default
  ``HANG_DELAY`` = 60, twice the chart-sync client's 30 s read timeout, so its
  request times out and is retried; ``delay=0`` drops the connection at once);
- ``variant`` (malformed, which only hits 200 answers): how the answer is broken.
  Body variants break any answer, request by request: ``truncated`` (default:
  cut JSON text) or ``missing_items`` (valid JSON without ``items``).  Ranking
  variants only hit the ranking endpoint and keep valid JSON, but corrupt the
  ranking's items (``rankings.corrupted``):

  - ``duplicate_positions``: the entry at position 2 says position 1 too;
  - ``duplicate_songs``: the last entry lists the first entry's song again;
  - ``position_out_of_range``: the last entry's position is the chart's
    ``maxResultsCount`` + 1 (201 on a 200 chart);
  - ``short``: the last entries are missing (a 200 chart answers 143, a 100
    chart 71; ``page.total`` says so);
  - ``gap``: the entry at position 57 is missing, the others keep their positions;
  - ``no_streams``: ``metric`` is null on every entry.

  A ranking variant corrupts the whole ranking before it is paged, so every
  page of one fetch agrees: the first page (no ``offset``, or 0) fires the rule
  like any request (``count``, ``rate``), and the later pages of that ranking
  follow the first page's decision until its next first page.  So ``count``
  counts corrupted rankings, not requests;
- ``date``: ``YYYY-MM-DD`` ranking date to hide (unpublished).  Without a date,
  an unpublished rule hides each matching chart's newest ranking and makes
  ``ranking/latest`` answer 404.

On the command line the same rule reads ``kind[:key=value,...]``, e.g.
``429:count=2,retry_after=1``, ``429:rate=0.1,path_contains=/ranking/`` or
``unpublished:date=2026-11-20,path_contains=spotify`` or
``malformed:variant=duplicate_positions,path_contains=/ranking/,count=1`` (values cannot
contain commas).

Rate decisions are seeded (``FaultBook(seed=...)``, ``--seed``, ``POST /__admin/seed``)
and keyed by the request, not drawn from one shared stream: rule *i* hits the
*n*-th request for a given path and query string that it is asked about when
``random.Random(f"{seed}/{i}/{path?query}/{n}").random() < rate``.  So the same
seed, rules and requests give the same hits, even when concurrent clients (a
scheduler's parallel tasks) interleave their requests differently from run to
run; a different seed gives different hits.  The per-request counts ``n``
restart when the seed is set, the rules are cleared or the emulator is reset.
"""

from __future__ import annotations

import datetime
import random
import re
import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

KINDS = ("429", "500", "slow", "hang", "malformed", "unpublished")
BODY_VARIANTS = ("truncated", "missing_items")  # the answer's text, request by request (server)
RANKING_VARIANTS = ("duplicate_positions", "duplicate_songs", "position_out_of_range",  # hard checks
                    "short", "gap", "no_streams")  # soft checks; the ranking's items (api, rankings)
MALFORMED_VARIANTS = BODY_VARIANTS + RANKING_VARIANTS
SLOW_DELAY = 1.0
HANG_DELAY = 60.0  # > the chart-sync client's read timeout (SoundchartsClient.timeout, 30 s)
_FOREVER = {"", "none", "null", "forever", "inf"}
_FIELDS = {"kind", "path_contains", "count", "rate", "retry_after", "delay", "date", "variant", "fired",
           "armed"}


@dataclass
class FaultRule:
    kind: str
    path_contains: str | None = None
    count: int | None = None
    retry_after: int = 1
    delay: float | None = None  # None: the kind's default (SLOW_DELAY, HANG_DELAY)
    date: datetime.date | None = None
    variant: str = "truncated"
    fired: int = 0
    rate: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"fault kind {self.kind!r} is not one of {', '.join(KINDS)}")
        if self.variant not in MALFORMED_VARIANTS:
            raise ValueError(f"fault variant {self.variant!r} is not one of {', '.join(MALFORMED_VARIANTS)}")
        if self.delay is None:
            self.delay = HANG_DELAY if self.kind == "hang" else SLOW_DELAY
        if (self.count is not None and self.count < 0) or self.retry_after < 0 or self.delay < 0:
            raise ValueError("fault count, retry_after and delay must not be negative")
        if self.rate is not None:
            if isinstance(self.rate, bool) or not isinstance(self.rate, int | float) \
                    or not 0 < self.rate <= 1:  # refuses NaN too
                raise ValueError(f"fault rate must be a number with 0 < rate <= 1, not {self.rate!r}")
            if self.kind == "unpublished":
                raise ValueError("fault rate does not apply to unpublished rules (they hide periods, "
                                 "not requests); use it with 429, 500, slow, hang or malformed")

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
            "rate": self.rate,
            "retry_after": self.retry_after,
            "delay": self.delay,
            "date": self.date.isoformat() if self.date else None,
            "variant": self.variant,
            "fired": self.fired,
            "armed": self.armed,
        }


def _rate(value: object) -> float:
    """A rate from JSON or command-line text; ``FaultRule`` checks its range."""
    try:
        if isinstance(value, bool):
            raise ValueError
        return float(str(value))
    except ValueError:
        raise ValueError(f"fault rate must be a number with 0 < rate <= 1, not {value!r}") from None


def rule_from_json(data: Mapping[str, object]) -> FaultRule:
    """A rule from its JSON form; raises ValueError naming the bad field."""
    unknown = set(data) - _FIELDS
    if unknown:
        raise ValueError(f"unknown fault field(s): {', '.join(sorted(unknown))}")
    fields: dict[str, object] = {"kind": str(data.get("kind", ""))}
    if data.get("rate") is not None:
        fields["rate"] = _rate(data["rate"])  # its own message: no need to repeat the whole rule
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


def parse_seed(value: object) -> int:
    """A seed: an integer (JSON number or decimal text); raises ValueError otherwise."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*[-+]?\d+\s*", value):
        return int(value)
    raise ValueError(f"seed must be an integer, not {value!r}")


class FaultBook:
    """The rules of one server, safe to use from its request threads.

    It also holds the seed of the rate decisions and counts the faults injected per kind.
    """

    def __init__(self, rules: Iterable[FaultRule] = (), seed: int = 0) -> None:
        self._lock = threading.Lock()
        self._rules = list(rules)
        self._seed = seed
        self._asked: Counter[tuple[int, str]] = Counter()  # (rule index, request) -> times asked
        self._injected: Counter[str] = Counter()
        self._rankings: dict[str, FaultRule] = {}  # ranking path -> the variant its last first page drew

    @property
    def seed(self) -> int:
        return self._seed

    def reseed(self, seed: int) -> None:
        """Set the seed; the rate decisions start over."""
        with self._lock:
            self._seed = seed
            self._asked.clear()

    def add(self, rule: FaultRule) -> None:
        with self._lock:
            self._rules.append(rule)

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()
            self._asked.clear()
            self._rankings.clear()

    def reset(self) -> None:
        """Clear the rules and the injected-fault counters (the seed stays)."""
        with self._lock:
            self._rules.clear()
            self._asked.clear()
            self._injected.clear()
            self._rankings.clear()

    def to_json(self) -> list[dict[str, object]]:
        with self._lock:
            return [rule.to_json() for rule in self._rules]

    def injected_json(self) -> dict[str, int]:
        """Faults injected per kind since the last reset (every kind, 0 when none)."""
        with self._lock:
            return {kind: self._injected[kind] for kind in KINDS}

    def active(self, kind: str, path: str) -> list[FaultRule]:
        """Armed rules of ``kind`` matching ``path``, without firing them."""
        with self._lock:
            return [r for r in self._rules if r.kind == kind and r.applies_to(path)]

    def fire(self, rule: FaultRule) -> bool:
        """Count one firing of ``rule``; False when it disarmed meanwhile."""
        with self._lock:
            return self._fire(rule)

    def take(self, kind: str, path: str, query: str = "",
             variants: tuple[str, ...] | None = None) -> FaultRule | None:
        """Fire and return the first armed rule of ``kind`` matching ``path`` that hits this request.

        A rule without a rate always hits; one with a rate hits as its seeded decision
        for this request (``path`` and ``query``) says.  ``variants``: only rules of these.
        """
        request = f"{path}?{query}" if query else path
        with self._lock:
            for index, rule in enumerate(self._rules):
                if rule.kind != kind or not rule.applies_to(path):
                    continue
                if variants is not None and rule.variant not in variants:
                    continue
                if rule.rate is not None and not self._draw(index, request, rule.rate):
                    continue
                if self._fire(rule):
                    return rule
        return None

    def ranking_fault(self, path: str, query: str, first_page: bool) -> FaultRule | None:
        """The ranking variant that corrupts this page of the ranking at ``path``, if any.

        A first page fires a rule as ``take`` does; a later page gets what the last first
        page of the same ranking drew, so one fetch is corrupted alike on every page.
        """
        if not first_page:
            with self._lock:
                return self._rankings.get(path)
        rule = self.take("malformed", path, query, RANKING_VARIANTS)
        with self._lock:
            if rule is None:
                self._rankings.pop(path, None)
            else:
                self._rankings[path] = rule
        return rule

    def _draw(self, index: int, request: str, rate: float) -> bool:
        """The seeded decision of rule ``index`` for the next time it is asked about ``request``."""
        n = self._asked[index, request]
        self._asked[index, request] = n + 1
        return random.Random(f"{self._seed}/{index}/{request}/{n}").random() < rate

    def _fire(self, rule: FaultRule) -> bool:
        if not rule.armed:
            return False
        rule.fired += 1
        self._injected[rule.kind] += 1
        return True
