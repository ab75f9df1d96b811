"""Server-side SVG plots for the admin pages: no JavaScript, no CDN, readable without a network.

Each function returns one self-contained ``<svg>`` string with a ``<title>`` and ``<desc>``
for screen readers; colours come from CSS custom properties with fallbacks, so the page's
theme (light or dark, like the Airflow UI) applies.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from html import escape

PALETTE = ("#017cee", "#e43921", "#00ad46", "#f6a609", "#8b4db8", "#0aa5a5")
DASHES = ("", "6 3", "2 3", "8 3 2 3", "1 2", "4 4")  # lines stay apart without colour, too
MARKED_POINTS = 60  # series with this many points or fewer get a dot per point


@dataclass(frozen=True)
class Series:
    name: str
    points: Sequence[tuple[date, float | None]]
    colour: str | None = None
    dash: str | None = None


def nice_ticks(high: float, count: int = 5) -> list[float]:
    """0 and round steps (1, 2, 2.5, 5 x 10^n) up to at least ``high``."""
    if high <= 0:
        return [0.0, 1.0]
    raw = high / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    ticks = [0.0]
    while ticks[-1] < high:
        ticks.append(ticks[-1] + step)
    return ticks


def short_number(value: float) -> str:
    for limit, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= limit:
            return f"{value / limit:.3g}{suffix}"
    return f"{value:.3g}" if value != int(value) else str(int(value))


def _nice_max(value: float) -> float:
    return nice_ticks(value)[-1]


def _fmt(value: float) -> str:
    return short_number(value)


def _axis_titles(left: float, right: float, top: float, bottom: float, height: float, x_label: str | None,
                 y_label: str | None) -> list[str]:
    """The titles under the x axis and beside the y axis (an empty label: none)."""
    out = []
    if x_label:
        out.append(f'<text x="{(left + right) / 2}" y="{height - 6}" text-anchor="middle" '
                   f'fill="var(--fg, #1f2937)">{escape(x_label)}</text>')
    if y_label:
        out.append(f'<text transform="translate(14 {(top + bottom) / 2}) rotate(-90)" text-anchor="middle" '
                   f'fill="var(--fg, #1f2937)">{escape(y_label)}</text>')
    return out


def _legend_label(right: float, ly: float, name: str) -> str:
    """A legend line's name, right of its swatch at height ``ly``."""
    return f'<text x="{right + 42}" y="{ly + 4}" fill="var(--fg, #1f2937)">{name}</text>'


def _axes(left: float, right: float, top: float, bottom: float, ticks: Sequence[float],
          y: Callable[[float], float], unit: str) -> list[str]:
    """The two axes and a labelled grid line per tick, shared by the line and column charts."""
    out = [f'<g stroke="var(--axis, #9ca3af)" fill="none"><line x1="{left}" y1="{bottom}" x2="{right}" '
           f'y2="{bottom}"/><line x1="{left}" y1="{top}" x2="{left}" y2="{bottom}"/></g>']
    for tick in ticks:
        out.append(f'<line x1="{left}" y1="{y(tick):.1f}" x2="{right}" y2="{y(tick):.1f}" '
                   f'stroke="var(--grid, #e5e7eb)"/><text x="{left - 6}" y="{y(tick) + 4:.1f}" text-anchor="end" '
                   f'fill="var(--muted, #6b7280)">{short_number(tick)}{escape(unit)}</text>')
    return out


def line_chart(title: str, series: Sequence[Series], *, unit: str = "", width: int = 640, height: int = 260,
               y_max: float | None = None, y_label: str | None = None, desc: str | None = None,
               empty_text: str = "no data yet", x_label: str = "Date") -> str:
    """Lines over time, one per series: y ticks, five date ticks, axis labels, a legend on the right."""
    uid = "plot-" + hashlib.sha1(title.encode()).hexdigest()[:10]
    lines = [s for s in series if any(v is not None for _, v in s.points)]
    if desc is None:
        desc = f"{title}: " + ("; ".join(f"{s.name}, {sum(v is not None for _, v in s.points)} points"
                                         for s in lines) or empty_text)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" class="plot" '
           f'aria-labelledby="{uid}-title {uid}-desc" font-family="sans-serif" font-size="11">',
           f'<title id="{uid}-title">{escape(title)}</title><desc id="{uid}-desc">{escape(desc)}</desc>']
    if not lines:
        out.append(f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" fill="var(--muted, #6b7280)">'
                   f'{escape(empty_text)}</text></svg>')
        return "".join(out)
    days = [d for s in lines for d, v in s.points if v is not None]
    values = [v for s in lines for _, v in s.points if v is not None]
    first, last = min(days), max(days)
    ticks = nice_ticks(max(values)) if y_max is None else nice_ticks(y_max)
    left, right, top, bottom = 60, width - 130, 14, height - 44
    span = max((last - first).days, 1)

    def x(day: date) -> float:
        return left + (day - first).days / span * (right - left)

    def y(value: float) -> float:
        return bottom - value / ticks[-1] * (bottom - top)

    out.extend(_axes(left, right, top, bottom, ticks, y, unit))
    for i in range(5 if span >= 4 else 1):
        day = first + timedelta(days=round(span * i / 4))
        out.append(f'<text x="{x(day):.1f}" y="{bottom + 16}" text-anchor="middle" '
                   f'fill="var(--muted, #6b7280)">{day:%b %d}</text>')
    out.extend(_axis_titles(left, right, top, bottom, height, f"{x_label} ({first:%Y-%m-%d} to {last:%Y-%m-%d})",
                            y_label))
    for row, s in enumerate(lines):
        colour = s.colour or PALETTE[row % len(PALETTE)]
        dash = s.dash if s.dash is not None else DASHES[row % len(DASHES)]
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        points = " ".join(f"{x(d):.1f},{y(v):.1f}" for d, v in s.points if v is not None)
        name = escape(s.name)
        out.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"{dash_attr}>'
                   f'<title>{name}</title></polyline>')
        drawn = [(d, v) for d, v in s.points if v is not None]
        if len(drawn) <= MARKED_POINTS:  # a lone point draws no line: a dot per point keeps it visible
            out.extend(f'<circle cx="{x(d):.1f}" cy="{y(v):.1f}" r="3" fill="{colour}" class="point">'
                       f'<title>{name}, {d:%Y-%m-%d}: {short_number(v)}{escape(unit)}</title></circle>'
                       for d, v in drawn)
        ly = top + 8 + row * 18
        out.append(f'<line x1="{right + 12}" y1="{ly}" x2="{right + 36}" y2="{ly}" stroke="{colour}" '
                   f'stroke-width="2"{dash_attr}/>' + _legend_label(right, ly, name))
    out.append("</svg>")
    return "".join(out)


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


def column_chart(title: str, columns: Sequence[tuple[str, Sequence[float]]], names: Sequence[str], *,
                 colours: Sequence[str] | None = None, unit: str = "", width: int = 640, height: int = 260,
                 y_max: float | None = None, y_label: str | None = None, x_label: str | None = None, empty_text: str = "no data yet") -> str:
    """Stacked columns, one per labelled bucket (a month of periods, say), one stack part per name:
    y ticks, a label under every column that fits, a legend on the right."""
    uid = "plot-" + hashlib.sha1(title.encode()).hexdigest()[:10]
    colours = colours or PALETTE
    totals = [sum(values) for _, values in columns]
    desc = f"{title}: " + (f"{len(columns)} columns, " + "; ".join(
        f"{name} {short_number(sum(v[i] for _, v in columns))}" for i, name in enumerate(names))
        if any(totals) else empty_text)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" class="plot" '
           f'aria-labelledby="{uid}-title {uid}-desc" font-family="sans-serif" font-size="11">',
           f'<title id="{uid}-title">{escape(title)}</title><desc id="{uid}-desc">{escape(desc)}</desc>']
    if not any(totals):
        out.append(f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" fill="var(--muted, #6b7280)">'
                   f'{escape(empty_text)}</text></svg>')
        return "".join(out)
    ticks = nice_ticks(max(totals) if y_max is None else y_max)
    left, right, top, bottom = 60, width - 130, 14, height - 44
    slot = (right - left) / len(columns)
    bar = max(min(slot * 0.8, 40), 1)

    def y(value: float) -> float:
        return bottom - value / ticks[-1] * (bottom - top)

    out.extend(_axes(left, right, top, bottom, ticks, y, unit))
    every = max(1, math.ceil(len(columns) * 48 / (right - left)))  # labels 48 px apart at least
    for i, (label, values) in enumerate(columns):
        cx = left + slot * (i + 0.5)
        base = 0.0
        for part, value in enumerate(values):
            if value <= 0:
                continue
            name = escape(names[part])
            out.append(f'<rect x="{cx - bar / 2:.1f}" y="{y(base + value):.1f}" width="{bar:.1f}" '
                       f'height="{y(base) - y(base + value):.1f}" fill="{colours[part % len(colours)]}">'
                       f'<title>{escape(label)}: {short_number(value)}{escape(unit)} {name}</title></rect>')
            base += value
        if not base:  # a column of zeros (0 % stored, say) is a fact, not a gap: a hairline says so
            out.append(f'<rect x="{cx - bar / 2:.1f}" y="{bottom - 2}" width="{bar:.1f}" height="2" '
                       f'fill="var(--muted, #6b7280)"><title>{escape(label)}: 0{escape(unit)}</title></rect>')
        if i % every == 0:
            out.append(f'<text x="{cx:.1f}" y="{bottom + 16}" text-anchor="middle" '
                       f'fill="var(--muted, #6b7280)">{escape(label)}</text>')
    out.extend(_axis_titles(left, right, top, bottom, height, x_label, y_label))
    for row, name in enumerate(names):
        ly = top + 8 + row * 18
        out.append(f'<rect x="{right + 12}" y="{ly - 6}" width="24" height="12" '
                   f'fill="{colours[row % len(colours)]}"/>' + _legend_label(right, ly, escape(name)))
    out.append("</svg>")
    return "".join(out)
