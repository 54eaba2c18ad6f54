"""Template tags of the schedules pages: beat's health banner."""

from django import template

register = template.Library()


@register.simple_tag
def taskops_beat_health() -> str:
    """Beat's health as a banner (when it last dispatched, schedules due but not sent)."""
    return ""
