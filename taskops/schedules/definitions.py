"""Portable schedule definitions: a periodic task as a plain dict keyed by its name, and back."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.dateparse import parse_datetime
from django_celery_beat.models import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
    SolarSchedule,
)

SCHEDULE_KINDS = ("crontab", "interval", "solar", "clocked")
# What a definition holds besides name and schedule, in the order shown in diffs.
TASK_FIELDS = (
    "task", "args", "kwargs", "queue", "exchange", "routing_key", "headers", "priority",
    "expires", "expire_seconds", "one_off", "start_time", "enabled", "description",
)
_JSON_TEXT_FIELDS = ("args", "kwargs", "headers")
_DATETIME_FIELDS = ("expires", "start_time")
_CRONTAB_FIELDS = ("minute", "hour", "day_of_month", "month_of_year", "day_of_week")


def schedule_of(task: PeriodicTask) -> dict[str, Any]:
    """The schedule part of a definition: {"kind": "crontab", "minute": "0", ..., "timezone": "UTC"}."""
    if task.crontab_id:
        c = task.crontab
        return {"kind": "crontab", **{f: getattr(c, f) for f in _CRONTAB_FIELDS},
                "timezone": str(c.timezone)}
    if task.interval_id:
        return {"kind": "interval", "every": task.interval.every, "period": task.interval.period}
    if task.solar_id:
        s = task.solar
        return {"kind": "solar", "event": s.event, "latitude": str(s.latitude),
                "longitude": str(s.longitude)}
    if task.clocked_id:
        return {"kind": "clocked", "clocked_time": task.clocked.clocked_time.isoformat()}
    return {"kind": ""}


def _json_or_text(text: str | None) -> Any:
    if text in (None, ""):
        return None
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return text  # kept as written: the form flags it, the definition never loses it


def definition_of(task: PeriodicTask) -> dict[str, Any]:
    """The whole schedule as plain JSON values (datetimes as ISO text, args/kwargs parsed)."""
    definition: dict[str, Any] = {"name": task.name, "schedule": schedule_of(task)}
    for field in TASK_FIELDS:
        value = getattr(task, field)
        if field in _JSON_TEXT_FIELDS:
            value = _json_or_text(value)
        elif isinstance(value, datetime):
            value = value.isoformat()
        definition[field] = value
    return definition


def _flat(definition: dict[str, Any]) -> dict[str, Any]:
    flat = {k: v for k, v in definition.items() if k != "schedule"}
    for key, value in (definition.get("schedule") or {}).items():
        flat[f"schedule.{key}"] = value
    return flat


def definition_changes(before: dict[str, Any] | None, after: dict[str, Any] | None) -> list[dict]:
    """Field-level diff of two definitions: [{"field", "before", "after"}] for each field that differs."""
    old, new = _flat(before or {}), _flat(after or {})
    fields = list(dict.fromkeys([*old, *new]))
    return [
        {"field": f, "before": old.get(f), "after": new.get(f)}
        for f in fields
        if old.get(f) != new.get(f)
    ]


def _schedule_object(schedule: dict[str, Any]):
    """Find or create the schedule row a definition names (shared rows, as beat's admin does)."""
    kind = schedule.get("kind")
    if kind == "crontab":
        spec = {f: str(schedule.get(f, "*")) for f in _CRONTAB_FIELDS}
        spec["timezone"] = schedule.get("timezone") or "UTC"
        model = CrontabSchedule
    elif kind == "interval":
        spec = {"every": int(schedule["every"]), "period": schedule["period"]}
        model = IntervalSchedule
    elif kind == "solar":
        spec = {"event": schedule["event"], "latitude": Decimal(str(schedule["latitude"])),
                "longitude": Decimal(str(schedule["longitude"]))}
        model = SolarSchedule
    elif kind == "clocked":
        when = schedule["clocked_time"]
        spec = {"clocked_time": parse_datetime(when) if isinstance(when, str) else when}
        model = ClockedSchedule
    else:
        raise ValidationError(f"Unknown schedule kind {kind!r}: use one of {', '.join(SCHEDULE_KINDS)}.")
    existing = model.objects.filter(**spec).order_by("pk").first()
    if existing is not None:
        return kind, existing
    candidate = model(**spec)
    candidate.full_clean()
    candidate.save()
    return kind, candidate


def _field_value(field: str, value: Any) -> Any:
    if field in _JSON_TEXT_FIELDS:
        if value is None:
            return "[]" if field == "args" else ("{}" if field == "kwargs" else None)
        return value if isinstance(value, str) else json.dumps(value)
    if field in _DATETIME_FIELDS and isinstance(value, str):
        return parse_datetime(value)
    return value


@transaction.atomic
def definition_apply(definition: dict[str, Any], task: PeriodicTask | None = None) -> PeriodicTask:
    """Write a definition to the schedule of that name (or `task`), through the model so beat sees it.

    Fields the definition leaves out keep their value. Raises ValidationError on a bad definition.
    """
    if task is None:
        task = PeriodicTask.objects.filter(name=definition["name"]).first() or PeriodicTask()
    task.name = definition["name"]
    if "schedule" in definition:
        kind, row = _schedule_object(definition["schedule"])
        for other in SCHEDULE_KINDS:
            setattr(task, other, row if other == kind else None)
    for field in TASK_FIELDS:
        if field in definition:
            setattr(task, field, _field_value(field, definition[field]))
    task.save()  # PeriodicTask.save() validates and calls PeriodicTasks.changed()
    return task
