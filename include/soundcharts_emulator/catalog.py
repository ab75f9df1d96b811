"""The emulated chart catalogue: platforms, song charts and their calendars.

A chart publishes one ranking per *period*. Periods are numbered by an integer
``k`` counted from ``EPOCH``; ``period_date`` and ``period_index`` convert
between ``k`` and the ranking date:

- daily charts: one ranking a day;
- weekly charts: one ranking a week, always on the chart's ``weekday``;
- monthly charts: one ranking a month, dated on the 1st.

What is *published* depends on "today": a daily ranking dated ``d`` appears
once ``d <= today - 1 day``, weekly and monthly rankings once ``d <= today``,
and only rankings within ``HISTORY_YEARS`` of today are kept.  The chart
``deezer-top-100-global-weekly-holiday`` skips the week containing Dec 25.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

EPOCH = date(2000, 1, 3)  # a Monday: daily period 0, and the week anchor
HISTORY_YEARS = 2

PLATFORMS: dict[str, str] = {
    "spotify": "Spotify",
    "apple-music": "Apple Music",
    "shazam": "Shazam",
    "deezer": "Deezer",
}
AUDIENCE_PLATFORMS: dict[str, str] = {**PLATFORMS, "youtube": "YouTube"}
COUNTRIES: dict[str, str] = {
    "GLOBAL": "Global",
    "US": "United States",
    "GB": "United Kingdom",
    "FR": "France",
    "DE": "Germany",
}
FREQUENCIES = ("daily", "weekly", "monthly")
WEEKDAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

_METRICS: dict[str, tuple[str, str, int]] = {
    # platform: (metric type, description, units per score point on a daily global chart)
    "spotify": ("streams", "Number of streams over the period", 300_000),
    "apple-music": ("plays", "Estimated number of plays over the period", 120_000),
    "shazam": ("shazams", "Number of Shazam recognitions over the period", 15_000),
    "deezer": ("streams", "Number of streams over the period", 40_000),
}
_COUNTRY_SCALE = {"GLOBAL": 1.0, "US": 0.25, "GB": 0.07, "FR": 0.05, "DE": 0.06}
_FREQUENCY_SCALE = {"daily": 1, "weekly": 7, "monthly": 30}


@dataclass(frozen=True)
class Chart:
    """One song chart. ``weekday`` (0 = Monday) is set for weekly charts only."""

    slug: str
    platform: str
    frequency: str
    country_code: str
    size: int
    weekday: int | None = None
    skips_christmas_week: bool = False

    @property
    def name(self) -> str:
        country = COUNTRIES[self.country_code]
        return f"{PLATFORMS[self.platform]} Top {self.size} {country} {self.frequency.title()}"

    @property
    def time_unit(self) -> str:
        """``timeOnChartUnit``: days on chart for daily charts, weeks otherwise."""
        return "DOC" if self.frequency == "daily" else "WOC"

    @property
    def metric_scale(self) -> float:
        base = _METRICS[self.platform][2]
        return base * _COUNTRY_SCALE[self.country_code] * _FREQUENCY_SCALE[self.frequency]

    def to_json(self) -> dict[str, object]:
        metric_type, description, _ = _METRICS[self.platform]
        return {
            "slug": self.slug,
            "name": self.name,
            "type": "song",
            "platform": self.platform,
            "frequency": self.frequency,
            "countryCode": self.country_code,
            "countryName": COUNTRIES[self.country_code],
            "cityName": None,
            "maxResultsCount": self.size,
            "webUrl": f"https://charts.emulator.invalid/song/{self.slug}",
            "metric": {"type": metric_type, "description": description},
        }


def _chart(platform: str, size: int, country: str, frequency: str, weekday: int | None = None) -> Chart:
    slug = f"{platform}-top-{size}-{country.lower()}-{frequency}"
    return Chart(slug, platform, frequency, country, size, weekday)


_THU, _FRI, _MON = 3, 4, 0

CHARTS: tuple[Chart, ...] = (
    _chart("spotify", 200, "GLOBAL", "daily"),
    _chart("spotify", 200, "GLOBAL", "weekly", _THU),
    _chart("spotify", 200, "US", "daily"),
    _chart("spotify", 200, "US", "weekly", _THU),
    _chart("spotify", 200, "GB", "daily"),
    _chart("spotify", 200, "FR", "daily"),
    _chart("spotify", 200, "DE", "daily"),
    _chart("spotify", 200, "DE", "weekly", _THU),
    _chart("apple-music", 200, "GLOBAL", "daily"),
    _chart("apple-music", 100, "US", "daily"),
    _chart("apple-music", 100, "GB", "daily"),
    _chart("apple-music", 100, "FR", "daily"),
    _chart("apple-music", 100, "DE", "daily"),
    _chart("apple-music", 200, "US", "monthly"),
    _chart("shazam", 200, "GLOBAL", "daily"),
    _chart("shazam", 200, "US", "daily"),
    _chart("shazam", 200, "FR", "weekly", _FRI),
    _chart("shazam", 200, "GB", "weekly", _FRI),
    _chart("shazam", 200, "DE", "weekly", _FRI),
    _chart("shazam", 200, "GLOBAL", "monthly"),
    _chart("deezer", 100, "FR", "daily"),
    _chart("deezer", 100, "GB", "daily"),
    _chart("deezer", 200, "FR", "weekly", _MON),
    _chart("deezer", 100, "DE", "monthly"),
    Chart("deezer-top-100-global-weekly-holiday", "deezer", "weekly", "GLOBAL", 100, _MON, True),
)
HOLIDAY_CHART_SLUG = "deezer-top-100-global-weekly-holiday"

_BY_SLUG = {chart.slug: chart for chart in CHARTS}
assert len(_BY_SLUG) == len(CHARTS), "chart slugs must be unique"


def atom(day: date) -> str:
    """A date as the API's ATOM datetime string, e.g. ``2026-02-04T00:00:00+00:00``."""
    return f"{day.isoformat()}T00:00:00+00:00"


def get_chart(slug: str) -> Chart | None:
    return _BY_SLUG.get(slug)


def charts_for_platform(platform: str, country_code: str | None = None) -> list[Chart]:
    wanted = country_code.upper() if country_code else None
    return [c for c in CHARTS if c.platform == platform and wanted in (None, c.country_code)]


# -- calendar ---------------------------------------------------------------------------


def _week_anchor(chart: Chart) -> date:
    return EPOCH + timedelta(days=chart.weekday or 0)


def period_date(chart: Chart, k: int) -> date:
    """The ranking date of period ``k`` of ``chart``."""
    if chart.frequency == "daily":
        return EPOCH + timedelta(days=k)
    if chart.frequency == "weekly":
        return _week_anchor(chart) + timedelta(weeks=k)
    year, month = divmod(k, 12)
    return date(EPOCH.year + year, month + 1, 1)


def period_index(chart: Chart, day: date) -> int:
    """The newest period whose ranking date is on or before ``day``."""
    if chart.frequency == "daily":
        return (day - EPOCH).days
    if chart.frequency == "weekly":
        return (day - _week_anchor(chart)).days // 7
    return (day.year - EPOCH.year) * 12 + day.month - 1


def is_skipped(chart: Chart, k: int) -> bool:
    """True for the holiday chart's ranking in the ISO week containing Dec 25."""
    if not chart.skips_christmas_week:
        return False
    day = period_date(chart, k)
    return day.isocalendar()[:2] == date(day.year, 12, 25).isocalendar()[:2]


def previous_period(chart: Chart, k: int) -> int:
    """The period published just before ``k`` (skipped periods are never published)."""
    k -= 1
    while is_skipped(chart, k):
        k -= 1
    return k


def history_start(today: date) -> date:
    try:
        return today.replace(year=today.year - HISTORY_YEARS)
    except ValueError:  # Feb 29
        return today.replace(year=today.year - HISTORY_YEARS, day=28)


def publication_cutoff(chart: Chart, today: date) -> date:
    """The newest ranking date published as of ``today``."""
    return today - timedelta(days=1) if chart.frequency == "daily" else today


def newest_period(chart: Chart, today: date) -> int:
    """The newest period published as of ``today``."""
    k = period_index(chart, publication_cutoff(chart, today))
    while is_skipped(chart, k):
        k -= 1
    return k


def published_periods(chart: Chart, today: date) -> list[int]:
    """Periods published as of ``today`` within the history window, newest first."""
    newest = newest_period(chart, today)
    oldest = period_index(chart, history_start(today))
    if period_date(chart, oldest) < history_start(today):
        oldest += 1
    return [k for k in range(newest, oldest - 1, -1) if not is_skipped(chart, k)]


def is_published(chart: Chart, k: int, today: date) -> bool:
    day = period_date(chart, k)
    return (
        history_start(today) <= day <= publication_cutoff(chart, today)
        and not is_skipped(chart, k)
    )
