"""Server-side SVG plots for the admin pages: no JavaScript, no CDN, readable without a network.

Each function returns one self-contained ``<svg>`` string with a ``<title>`` and ``<desc>``
for screen readers; colours come from CSS custom properties with fallbacks, so the page's
theme (light or dark, like the Airflow UI) applies.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from html import escape

PALETTE = ("#017cee", "#e43921", "#00ad46", "#f6a609", "#8b4db8", "#0aa5a5")


@dataclass(frozen=True)
class Series:
    name: str
    points: Sequence[tuple[date, float | None]]


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    magnitude = 10 ** (len(str(int(value))) - 1)
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * magnitude:
            return step * magnitude
    return 10 * magnitude


def _fmt(value: float) -> str:
    if abs(value) >= 1_000_000:
        return f"{value / 1_000_000:.1f}M"
    if abs(value) >= 1_000:
        return f"{value / 1_000:.1f}k"
    return f"{value:g}" if value == int(value) else f"{value:.1f}"


def line_chart(title: str, series: Sequence[Series], *, unit: str = "", width: int = 640, height: int = 240,
               y_max: float | None = None) -> str:
    """Lines over time, one per series, with y grid labels and the first/last dates on the x axis."""
    left, right, top, bottom = 56, 12, 28, 36
    days = sorted({d for s in series for d, v in s.points if v is not None})
    values = [v for s in series for _, v in s.points if v is not None]
    desc = f"{title}: " + "; ".join(
        f"{s.name} {len([p for p in s.points if p[1] is not None])} points" for s in series)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
             f'class="plot" aria-labelledby="t"><title>{escape(title)}</title><desc>{escape(desc)}</desc>',
             f'<text x="{left}" y="16" class="plot-title" font-size="13" font-weight="600" '
             f'fill="var(--fg, #1f2937)">{escape(title)}</text>']
    if not days:
        parts.append(f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" font-size="12" '
                     'fill="var(--muted, #6b7280)">no data yet</text></svg>')
        return "".join(parts)
    top_value = y_max if y_max is not None else _nice_max(max(values))
    plot_w, plot_h = width - left - right, height - top - bottom
    first, last = days[0], days[-1]
    span = max((last - first).days, 1)

    def x(d: date) -> float:
        return left + plot_w * ((d - first).days / span if len(days) > 1 else 0.5)

    def y(v: float) -> float:
        return top + plot_h * (1 - v / top_value)

    for i in range(5):
        value = top_value * i / 4
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y(value):.1f}" y2="{y(value):.1f}" '
                     'stroke="var(--grid, #e5e7eb)" stroke-width="1"/>'
                     f'<text x="{left - 6}" y="{y(value) + 4:.1f}" text-anchor="end" font-size="10" '
                     f'fill="var(--muted, #6b7280)">{_fmt(value)}{escape(unit)}</text>')
    parts.append(f'<text x="{left}" y="{height - 10}" font-size="10" fill="var(--muted, #6b7280)">{first}</text>'
                 f'<text x="{width - right}" y="{height - 10}" text-anchor="end" font-size="10" '
                 f'fill="var(--muted, #6b7280)">{last}</text>')
    for i, s in enumerate(series):
        colour = PALETTE[i % len(PALETTE)]
        pts = [(x(d), y(v)) for d, v in s.points if v is not None]
        if len(pts) == 1:
            parts.append(f'<circle cx="{pts[0][0]:.1f}" cy="{pts[0][1]:.1f}" r="3" fill="{colour}"/>')
        elif pts:
            path = " ".join(f"{'M' if j == 0 else 'L'}{px:.1f},{py:.1f}" for j, (px, py) in enumerate(pts))
            parts.append(f'<path d="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        parts.append(f'<rect x="{left + 120 * i + 150}" y="7" width="10" height="10" fill="{colour}"/>'
                     f'<text x="{left + 120 * i + 164}" y="16" font-size="11" '
                     f'fill="var(--fg, #1f2937)">{escape(s.name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def bar_chart(title: str, bars: Sequence[tuple[str, float]], *, unit: str = "", width: int = 640,
              bar_height: int = 18) -> str:
    """Horizontal bars (label, value), largest first as given: slowest charts, freshness."""
    left, right, top = 220, 60, 28
    height = top + max(1, len(bars)) * (bar_height + 6) + 8
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" class="plot">'
             f'<title>{escape(title)}</title><desc>{escape(title)}: {len(bars)} bars</desc>'
             f'<text x="8" y="16" font-size="13" font-weight="600" fill="var(--fg, #1f2937)">{escape(title)}</text>']
    if not bars:
        parts.append(f'<text x="8" y="{top + 14}" font-size="12" fill="var(--muted, #6b7280)">no data yet</text></svg>')
        return "".join(parts)
    top_value = _nice_max(max(v for _, v in bars))
    for i, (label, value) in enumerate(bars):
        y = top + i * (bar_height + 6)
        w = (width - left - right) * (value / top_value)
        short = label if len(label) <= 34 else label[:33] + "…"
        parts.append(f'<text x="{left - 8}" y="{y + bar_height - 5}" text-anchor="end" font-size="11" '
                     f'fill="var(--fg, #1f2937)"><title>{escape(label)}</title>{escape(short)}</text>'
                     f'<rect x="{left}" y="{y}" width="{max(w, 1):.1f}" height="{bar_height}" rx="2" '
                     f'fill="{PALETTE[0]}"/>'
                     f'<text x="{left + w + 6:.1f}" y="{y + bar_height - 5}" font-size="11" '
                     f'fill="var(--muted, #6b7280)">{_fmt(value)}{escape(unit)}</text>')
    parts.append("</svg>")
    return "".join(parts)
