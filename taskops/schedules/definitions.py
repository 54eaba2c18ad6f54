"""Portable schedule definitions: a periodic task as a plain dict keyed by its name, and back."""

from __future__ import annotations

import importlib.util
import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.dateparse import parse_datetime
from django_celery_beat.models import (
    PERIOD_CHOICES,
    SOLAR_SCHEDULES,
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
    SolarSchedule,
)

from taskops.schedules.preview import CRONTAB_FIELDS, crontab_of, zone

SCHEDULE_KINDS = ("crontab", "interval", "solar", "clocked")
EVERY_MAX = 10**9  # the largest interval count (of any period) a schedule may have
_COORDINATE_STEP = Decimal("0.000001")
# What a definition holds besides name and schedule, in the order shown in diffs.
TASK_FIELDS = (
    "task", "args", "kwargs", "queue", "exchange", "routing_key", "headers", "priority",
    "expires", "expire_seconds", "one_off", "start_time", "enabled", "description",
)
_JSON_TEXT_FIELDS = ("args", "kwargs", "headers")
_DATETIME_FIELDS = ("expires", "start_time")


def _iso(value: datetime) -> str:
    """ISO text in UTC, as the database gives it back (so a definition compares equal after a save)."""
    return value.astimezone(timezone.utc).isoformat() if value.tzinfo is not None else value.isoformat()


def coordinate_text(value: Any) -> str:
    """A latitude or longitude with the 6 decimals the database keeps."""
    return str(Decimal(str(value)).quantize(_COORDINATE_STEP))


def schedule_of(task: PeriodicTask) -> dict[str, Any]:
    """The schedule part of a definition: {"kind": "crontab", "minute": "0", ..., "timezone": "UTC"}."""
    if task.crontab_id:
        c = task.crontab
        return {"kind": "crontab", **{f: getattr(c, f) for f in CRONTAB_FIELDS},
                "timezone": str(c.timezone)}
    if task.interval_id:
        return {"kind": "interval", "every": task.interval.every, "period": task.interval.period}
    if task.solar_id:
        s = task.solar
        return {"kind": "solar", "event": s.event, "latitude": coordinate_text(s.latitude),
                "longitude": coordinate_text(s.longitude)}
    if task.clocked_id:
        return {"kind": "clocked", "clocked_time": _iso(task.clocked.clocked_time)}
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
            value = _iso(value)
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


def _model_problems(model, name: str, value: Any) -> list[str]:
    """The messages of the model field's own validators (max_length included) for `value`."""
    field = model._meta.get_field(name)
    try:
        field.run_validators(value)
        if field.max_length is not None and len(str(value)) > field.max_length:
            raise ValidationError(f"Ensure this value has at most {field.max_length} characters.")
    except ValidationError as error:
        return list(error.messages)
    return []


def _crontab_problems(schedule: dict[str, Any]) -> dict[str, list[str]]:
    fields = {f: str(schedule.get(f) if schedule.get(f) is not None else "*").strip() or "*"
              for f in CRONTAB_FIELDS}
    problems = {f: found for f in CRONTAB_FIELDS
                if (found := _model_problems(CrontabSchedule, f, fields[f]))}
    zone_name = str(schedule.get("timezone") or "UTC")
    try:
        zone(zone_name)
    except ValueError as exc:
        problems["timezone"] = [str(exc)]
    if not problems:
        try:
            crontab_of(fields, zone_name)
        except ValueError as exc:  # not a crontab Celery can read, or one that never fires
            problems["kind"] = [str(exc)]
    return problems


def _interval_problems(schedule: dict[str, Any]) -> dict[str, list[str]]:
    every, period = schedule.get("every"), schedule.get("period")
    problems: dict[str, list[str]] = {}
    if period not in dict(PERIOD_CHOICES):
        problems["period"] = [f"Choose one of {', '.join(dict(PERIOD_CHOICES))}."]
    if isinstance(every, bool) or not isinstance(every, int) or not 1 <= every <= EVERY_MAX:
        problems["every"] = [f"A whole number from 1 to {EVERY_MAX}."]
    if not problems:
        try:
            timedelta(**{period: every})
        except OverflowError:
            problems["every"] = ["Too long: beat cannot count that far."]
    return problems


def _solar_problems(schedule: dict[str, Any]) -> dict[str, list[str]]:
    problems: dict[str, list[str]] = {}
    if schedule.get("event") not in dict(SOLAR_SCHEDULES):
        problems["event"] = [f"Choose one of {', '.join(dict(SOLAR_SCHEDULES))}."]
    for name in ("latitude", "longitude"):
        try:
            value = Decimal(str(schedule.get(name)).strip())
        except (InvalidOperation, ValueError):
            value = None
        if value is None or not value.is_finite():
            problems[name] = ["A number."]
            continue
        if found := _model_problems(SolarSchedule, name, value):
            problems[name] = found
    if not problems and importlib.util.find_spec("ephem") is None:
        # Beat builds every enabled schedule when it loads them: without ephem a solar one stops
        # it from loading any.
        problems["kind"] = [("Solar schedules need the ephem package, which is not installed "
                             "here; beat would fail to load them. Install ephem where beat and "
                             "the console run first.")]
    return problems


def _clocked_problems(schedule: dict[str, Any]) -> dict[str, list[str]]:
    when = schedule.get("clocked_time")
    try:
        parsed = when if isinstance(when, datetime) else parse_datetime(str(when or ""))
    except ValueError:
        parsed = None
    if parsed is None:
        return {"clocked_time": ["A date and time, such as 2030-01-31T02:30:00+00:00."]}
    return {}


_KIND_PROBLEMS = {"crontab": _crontab_problems, "interval": _interval_problems,
                  "solar": _solar_problems, "clocked": _clocked_problems}


def schedule_problems(schedule: dict[str, Any]) -> dict[str, list[str]]:
    """What is wrong with a definition's schedule part, by its field ("kind": the schedule as a whole).

    The one check of a schedule: the editor's form, the import and every write (definition_apply)
    ask it. The model's own validators, and what beat needs: a crontab Celery can read and that
    some date satisfies (not 30 February), a time zone that exists, an interval beat can count,
    the ephem package for solar schedules. {} when beat can run it.
    """
    check = _KIND_PROBLEMS.get(schedule.get("kind"))
    if check is None:
        return {"kind": [(f"Unknown schedule kind {schedule.get('kind')!r}: use one of "
                          f"{', '.join(SCHEDULE_KINDS)}.")]}
    return check(schedule)


def problems_text(problems: dict[str, list[str]]) -> str:
    """schedule_problems as one line: "hour: ...; It can never fire: ..."."""
    return "; ".join(" ".join(messages) if field == "kind" else f"{field}: {' '.join(messages)}"
                     for field, messages in problems.items())


def _schedule_object(schedule: dict[str, Any]):
    """Find or create the schedule row a definition names (shared rows, as beat's admin does)."""
    kind = schedule.get("kind")
    if kind == "crontab":
        spec = {f: str(schedule.get(f, "*")) for f in CRONTAB_FIELDS}
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

    Fields the definition leaves out keep their value. Raises ValidationError on a bad definition,
    a schedule schedule_problems finds wrong included.
    """
    if "schedule" in definition and (problems := schedule_problems(definition["schedule"])):
        raise ValidationError({"schedule": [problems_text(problems)]})
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
