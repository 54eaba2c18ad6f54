"""Server-rendered SVG charts: a report's daily duration and success rate, accessible and escaped."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

WIDTH, HEIGHT = 760, 280
LEFT, RIGHT, TOP, BOTTOM = 64, 56, 28, 48
PLOT_W, PLOT_H = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
MEDIAN_COLOR, MAX_COLOR, RATE_COLOR, GRID_COLOR = "#205067", "#c0392b", "#b7dfb4", "#dddddd"
# Duration units for the left axis: the largest that keeps the top tick at 1 or more.
UNITS = ((3600.0, "h"), (60.0, "min"), (1.0, "s"))


@dataclass(frozen=True)
class DayPoint:
    """One day of a report: runs that ended that day, how many succeeded, their durations."""

    day: date
    ended: int = 0
    succeeded: int = 0
    median_seconds: float | None = None
    max_seconds: float | None = None

    @property
    def success_rate(self) -> float | None:
        """Share of ended runs that succeeded (0..1), or None on a day without ended runs."""
        return self.succeeded / self.ended if self.ended else None


def nice_ceiling(value: float) -> float:
    """The smallest 1, 2, 2.5 or 5 x 10^k at or above `value` (1 for nothing to show)."""
    if value <= 0 or not math.isfinite(value):
        return 1.0
    magnitude = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * magnitude * (1 + 1e-9):
            return step * magnitude
    return 10 * magnitude


def _unit(top_seconds: float) -> tuple[float, str]:
    for size, name in UNITS:
        if top_seconds >= size * 2 or size == 1.0:
            return size, name
    return 1.0, "s"


def _number(value: float) -> str:
    return f"{value:g}" if value >= 1 or value == 0 else f"{value:.2g}"


def _segments(points: list[tuple[float, float] | None]) -> list[list[tuple[float, float]]]:
    """Runs of consecutive known points: a day without ended runs breaks the line."""
    segments: list[list[tuple[float, float]]] = [[]]
    for point in points:
        if point is None:
            if segments[-1]:
                segments.append([])
        else:
            segments[-1].append(point)
    return [s for s in segments if s]


def _line(points: list[tuple[float, float] | None], color: str, *, dashed: bool, label: str) -> str:
    parts = []
    dash = ' stroke-dasharray="5 3"' if dashed else ""
    for segment in _segments(points):
        coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in segment)
        if len(segment) == 1:
            x, y = segment[0]
            parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{color}"/>')
        else:
            parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2"{dash} '
                         f'points="{coords}"/>')
    return f'<g data-series="{escape(label)}">{"".join(parts)}</g>'


def _day_text(point: DayPoint) -> str:
    if not point.ended:
        return f"{point.day.isoformat()}: no ended runs"
    text = (f"{point.day.isoformat()}: {point.ended} ended, {point.succeeded} succeeded "
            f"({100 * (point.success_rate or 0):.0f} %)")
    if point.median_seconds is not None:
        text += (f", median {_number(point.median_seconds)} s, "
                 f"max {_number(point.max_seconds or 0)} s")
    return text


def duration_trend_svg(points: Sequence[DayPoint], *, title: str, chart_id: str = "trend") -> SafeString:
    """Daily median and max duration (left axis) and success rate (bars, right axis) as inline SVG.

    Every text is escaped; the SVG has a <title> and a <desc> that say what it shows, and each
    day carries its own <title> (a tooltip, read by screen readers).
    """
    days = list(points)
    chart_id = "".join(ch for ch in chart_id if ch.isalnum() or ch in "-_") or "trend"
    top_seconds = max((p.max_seconds or 0 for p in days), default=0)
    unit = _unit(top_seconds)
    top = nice_ceiling(top_seconds / unit[0])
    slot = PLOT_W / max(len(days), 1)
    base = TOP + PLOT_H

    def x_of(index: int) -> float:
        return LEFT + slot * (index + 0.5)

    def y_of(seconds: float) -> float:
        return base - (seconds / unit[0]) / top * PLOT_H

    ended = sum(p.ended for p in days)
    succeeded = sum(p.succeeded for p in days)
    first, last = (days[0].day.isoformat(), days[-1].day.isoformat()) if days else ("", "")
    summary = (f"{len(days)} days from {first} to {last}: {ended} runs ended, {succeeded} succeeded"
               + (f" ({100 * succeeded / ended:.0f} %)" if ended else "")
               + (f"; longest run {_number(top_seconds)} s." if top_seconds else "; no durations."))
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="taskops-chart" role="img" '
        f'width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'aria-labelledby="{chart_id}-title" aria-describedby="{chart_id}-desc" '
        f'font-family="sans-serif" font-size="11" '
        f'fill="currentColor">',
        f'<title id="{chart_id}-title">{escape(title)}</title>',
        f'<desc id="{chart_id}-desc">{escape(summary)} Bars: daily success rate (right axis). '
        f'Solid line: median duration; dashed line: longest duration (left axis, {unit[1]}).</desc>',
    ]
    # Success-rate bars behind the lines (right axis, 0-100 %).
    for index, point in enumerate(days):
        rate = point.success_rate
        if rate is not None:  # a day of failures only gets a red mark, unlike a day without runs
            height = rate * PLOT_H if rate else 3
            out.append(f'<rect x="{x_of(index) - slot * 0.35:.1f}" y="{base - height:.1f}" '
                       f'width="{slot * 0.7:.1f}" height="{height:.1f}" data-rate="{rate:.3f}" '
                       f'fill="{RATE_COLOR if rate else MAX_COLOR}"/>')
    # Grid and left axis ticks (duration), right axis ticks (success rate).
    for step in range(5):
        fraction = step / 4
        y = base - fraction * PLOT_H
        out.append(f'<line x1="{LEFT}" x2="{LEFT + PLOT_W}" y1="{y:.1f}" y2="{y:.1f}" '
                   f'stroke="{GRID_COLOR}"/>')
        out.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
                   f'{escape(_number(top * fraction))}</text>')
        out.append(f'<text x="{LEFT + PLOT_W + 6}" y="{y + 4:.1f}">{int(fraction * 100)} %</text>')
    # Day labels: about six along the axis, always the first and the last day.
    every = max(1, math.ceil(len(days) / 6))
    for index, point in enumerate(days):
        if index % every == 0 or index == len(days) - 1:
            out.append(f'<text x="{x_of(index):.1f}" y="{base + 16}" text-anchor="middle">'
                       f'{escape(point.day.strftime("%d %b"))}</text>')
    out.append(f'<line x1="{LEFT}" x2="{LEFT + PLOT_W}" y1="{base}" y2="{base}" stroke="#888"/>')
    out.append(f'<line x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{base}" stroke="#888"/>')
    # Axis titles.
    out.append(f'<text x="{LEFT + PLOT_W / 2:.1f}" y="{HEIGHT - 8}" text-anchor="middle">'
               f'day (runs by the time they ended)</text>')
    out.append(f'<text transform="translate(14 {TOP + PLOT_H / 2:.1f}) rotate(-90)" '
               f'text-anchor="middle">duration ({escape(unit[1])})</text>')
    out.append(f'<text transform="translate({WIDTH - 8} {TOP + PLOT_H / 2:.1f}) rotate(90)" '
               f'text-anchor="middle">success rate</text>')
    # Duration lines.
    medians = [(x_of(i), y_of(p.median_seconds)) if p.median_seconds is not None else None
               for i, p in enumerate(days)]
    maxima = [(x_of(i), y_of(p.max_seconds)) if p.max_seconds is not None else None
              for i, p in enumerate(days)]
    out.append(_line(maxima, MAX_COLOR, dashed=True, label="longest duration"))
    out.append(_line(medians, MEDIAN_COLOR, dashed=False, label="median duration"))
    # One transparent column per day with its numbers as a tooltip.
    for index, point in enumerate(days):
        out.append(f'<rect x="{x_of(index) - slot / 2:.1f}" y="{TOP}" width="{slot:.1f}" '
                   f'height="{PLOT_H}" fill="transparent"><title>{escape(_day_text(point))}'
                   f'</title></rect>')
    # Legend.
    out.append(
        f'<g transform="translate({LEFT} 14)">'
        f'<line x1="0" x2="18" y1="-4" y2="-4" stroke="{MEDIAN_COLOR}" stroke-width="2"/>'
        f'<text x="22" y="0">median duration</text>'
        f'<line x1="130" x2="148" y1="-4" y2="-4" stroke="{MAX_COLOR}" stroke-width="2" '
        f'stroke-dasharray="5 3"/><text x="152" y="0">longest duration</text>'
        f'<rect x="262" y="-10" width="14" height="10" fill="{RATE_COLOR}"/>'
        f'<text x="280" y="0">success rate</text></g>'
    )
    if not ended:
        out.append(f'<text x="{LEFT + PLOT_W / 2:.1f}" y="{TOP + PLOT_H / 2:.1f}" '
                   f'text-anchor="middle" font-size="14" fill="#666">No ended runs in these days.</text>')
    out.append("</svg>")
    return mark_safe("".join(out))  # noqa: S308 - every text above went through escape()
