"""Template tags of the schedules pages: beat's health banner, the import/export links, definition values."""

from __future__ import annotations

import json

from django import template

from taskops.permissions import can
from taskops.selectors.beat_health import beat_health_shared
from taskops.web import transfer_url

register = template.Library()

EXPORT_LABELS = (("json", "Export JSON"), ("yaml", "Export YAML"), ("csv", "Export CSV"),
                 ("xlsx", "Export XLSX"))


@register.inclusion_tag("admin/taskops/_beat_health.html")
def taskops_beat_health(health=None) -> dict:
    """Beat's health as a banner: when it last dispatched, schedules due but not sent, late ones.

    Pass the BeatHealth a page already has ({% taskops_beat_health health %}); without one the
    shared reading (one per TASKOPS_LIVE_TTL for all viewers) is used.
    """
    health = health if health is not None else beat_health_shared()
    shown = health.late[:10]
    return {"health": health, "late_shown": shown, "late_more": len(health.late) - len(shown)}


@register.simple_tag(takes_context=True)
def schedule_transfer_links(context) -> dict:
    """{"export": [(label, url)], "import": url or ""}: the links this user may follow."""
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None:
        return {"export": [], "import": ""}
    export = transfer_url("export") if can(user, "schedule.export") else ""
    return {
        "export": [(label, f"{export}?format={fmt}") for fmt, label in EXPORT_LABELS] if export else [],
        "import": transfer_url("import") if can(user, "schedule.import") else "",
    }


@register.filter
def definition_value(value) -> str:
    """A definition's value as the import preview shows it: JSON for lists and objects, — for none."""
    if value is None:
        return "—"
    if isinstance(value, (list, dict, bool)):
        return json.dumps(value, ensure_ascii=False)
    return str(value) if value != "" else '""'


@register.filter
def schedule_text(schedule: dict) -> str:
    """A definition's schedule in one line: "crontab 0 2 * * 1-5 (Europe/Berlin)", "every 10 minutes"."""
    schedule = schedule or {}
    kind = schedule.get("kind")
    if kind == "crontab":
        fields = " ".join(str(schedule.get(f, "*")) for f in
                          ("minute", "hour", "day_of_month", "month_of_year", "day_of_week"))
        return f"crontab {fields} ({schedule.get('timezone')})"
    if kind == "interval":
        return f"every {schedule.get('every')} {schedule.get('period')}"
    if kind == "solar":
        return f"{schedule.get('event')} at {schedule.get('latitude')}, {schedule.get('longitude')}"
    if kind == "clocked":
        return f"once at {schedule.get('clocked_time')}"
    return "no schedule"
