"""Template filters of the report pages."""

from __future__ import annotations

from django import template

register = template.Library()


@register.filter
def duration(value) -> str:
    """Seconds as "0.42 s", "12.5 s", "4 min 10 s" or "2 h 5 min" (— when unknown)."""
    if value is None:
        return "—"
    seconds = float(value)
    if seconds < 60:
        return f"{seconds:.2f} s" if seconds < 10 else f"{seconds:.1f} s"
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min {secs} s"
