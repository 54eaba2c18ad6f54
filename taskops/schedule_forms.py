"""Forms of the schedule editor: the schedule (kind and fields), the whole periodic task, the preview."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from django import forms
from django.conf import settings
from django.utils import timezone
from django_celery_beat.models import (
    PERIOD_CHOICES,
    SOLAR_SCHEDULES,
    CrontabSchedule,
    PeriodicTask,
)

from taskops.forms import (
    JsonCallMixin,
    QueueNameField,
    arguments_check,
    json_args_field,
    json_kwargs_field,
    json_value,
    textareas_limit,
)
from taskops.schedules.definitions import EVERY_MAX, schedule_problems
from taskops.schedules.preview import CRONTAB_FIELDS, PREVIEW_COUNT, Preview, preview, zone_names

KIND_CHOICES = [
    ("crontab", "Crontab (minute, hour, day, month, weekday)"),
    ("interval", "Interval (every n seconds, minutes, ...)"),
    ("solar", "Solar event (sunrise, sunset, ... at a place)"),
    ("clocked", "Clocked (once, at a date and time)"),
]
# The schedule's own fields, per kind (the JavaScript shows the group of the chosen kind).
KIND_FIELDS = {
    "crontab": [*CRONTAB_FIELDS, "timezone"],
    "interval": ["every", "period"],
    "solar": ["event", "latitude", "longitude"],
    "clocked": ["clocked_time"],
}
# Fields the preview depends on: sent to the preview URL as the user types.
PREVIEW_FIELDS = ("kind", *[f for fields in KIND_FIELDS.values() for f in fields],
                  "start_time", "expires", "one_off", "enabled", "pk")
_DATETIME_WIDGET = forms.DateTimeInput(attrs={"type": "datetime-local", "step": 1},
                                       format="%Y-%m-%dT%H:%M:%S")


def _zone_choices() -> list[tuple[str, str]]:
    return [(name, name) for name in sorted(zone_names())]


def _crontab_field(name: str) -> forms.CharField:
    model_field = CrontabSchedule._meta.get_field(name)
    return forms.CharField(
        required=False, initial="*", max_length=model_field.max_length, strip=True,
        label=model_field.verbose_name.capitalize(), validators=list(model_field.validators),
        help_text=model_field.help_text, widget=forms.TextInput(attrs={"size": 16}),
    )


def _datetime_field(label: str, help_text: str) -> forms.DateTimeField:
    return forms.DateTimeField(required=False, label=label, widget=_DATETIME_WIDGET,
                               help_text=f"{help_text} In {settings.TIME_ZONE}.")


class ScheduleForm(forms.Form):
    """The schedule part of a periodic task; cleaned_data["schedule"] is a definition's schedule."""

    kind = forms.ChoiceField(choices=KIND_CHOICES, initial="crontab", widget=forms.RadioSelect)
    minute = _crontab_field("minute")
    hour = _crontab_field("hour")
    day_of_month = _crontab_field("day_of_month")
    month_of_year = _crontab_field("month_of_year")
    day_of_week = _crontab_field("day_of_week")
    timezone = forms.ChoiceField(choices=_zone_choices, required=False, label="Time zone",
                                 help_text="The crontab's times are read in this zone (DST included).",
                                 error_messages={"invalid_choice": "Unknown time zone %(value)r."})
    every = forms.IntegerField(required=False, min_value=1, max_value=EVERY_MAX, label="Every")
    period = forms.ChoiceField(choices=PERIOD_CHOICES, required=False, initial="minutes")
    event = forms.ChoiceField(choices=SOLAR_SCHEDULES, required=False, label="Solar event")
    latitude = forms.DecimalField(required=False, max_digits=9, decimal_places=6, min_value=-90,
                                  max_value=90)
    longitude = forms.DecimalField(required=False, max_digits=9, decimal_places=6, min_value=-180,
                                   max_value=180)
    clocked_time = _datetime_field("Run at", "Clocked schedules run once.")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["timezone"].initial = getattr(settings, "CELERY_TIMEZONE", None) or "UTC"

    def _require(self, data: dict, names: list[str]) -> bool:
        missing = [n for n in names if data.get(n) in (None, "")]
        for name in missing:
            if name not in self.errors:
                self.add_error(name, "Needed for this kind of schedule.")
        return not missing and not any(n in self.errors for n in names)

    def _schedule(self, data: dict) -> dict[str, Any] | None:
        """The schedule the fields describe, or None when a field it needs is missing or wrong."""
        kind = data.get("kind")
        if kind == "crontab":
            if any(f in self.errors for f in KIND_FIELDS["crontab"]):
                return None
            return {"kind": "crontab", **{f: data.get(f) or "*" for f in CRONTAB_FIELDS},
                    "timezone": data.get("timezone") or "UTC"}
        if kind not in KIND_FIELDS or not self._require(data, KIND_FIELDS[kind]):
            return None
        if kind == "interval":
            return {"kind": "interval", "every": data["every"], "period": data["period"]}
        if kind == "solar":
            return {"kind": "solar", "event": data["event"], "latitude": str(data["latitude"]),
                    "longitude": str(data["longitude"])}
        return {"kind": "clocked", "clocked_time": data["clocked_time"].isoformat()}

    def clean(self):
        data = super().clean()
        schedule = self._schedule(data)
        if schedule is not None:
            problems = schedule_problems(schedule)  # the editor, the import and every write agree
            for field, messages in problems.items():
                self.add_error(field, messages)
            if not problems:
                data["schedule"] = schedule
        return data


class SchedulePreviewForm(ScheduleForm):
    """What the live preview reads (a GET: nothing is saved)."""

    start_time = forms.DateTimeField(required=False)
    expires = forms.DateTimeField(required=False)
    one_off = forms.BooleanField(required=False)
    enabled = forms.BooleanField(required=False)
    pk = forms.IntegerField(required=False)

    def preview(self, *, now: datetime | None = None, last_run_at: datetime | None = None) -> Preview:
        """The next fire times once this is saved now, or a Preview whose error lists what is wrong.

        `last_run_at`: the last run beat counts the stored schedule from (None for a new schedule
        or one without a run since its last change): a save keeps it, so a time of the new
        schedule that passed since then is sent at once.
        """
        if not self.is_valid() or "schedule" not in self.cleaned_data:
            problems = "; ".join(
                " ".join(errors) if field in ("__all__", "kind") else
                f"{self.fields[field].label or field}: {' '.join(errors)}"
                for field, errors in self.errors.items())
            return Preview(timezone="", error=problems or "Choose a kind of schedule.")
        data = self.cleaned_data
        return preview(
            data["schedule"], now=now or timezone.now(), count=PREVIEW_COUNT,
            last_run_at=last_run_at, start_time=data.get("start_time"), expires=data.get("expires"),
            one_off=data.get("one_off") or data["schedule"]["kind"] == "clocked",
            enabled=bool(data.get("enabled")),
        )


def _json_text(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


class PeriodicTaskForm(JsonCallMixin, ScheduleForm):
    """A whole periodic task as the editor shows it; cleaned into a portable definition.

    The task must be registered here or on a live worker unless `task_forced` is ticked;
    the arguments must be JSON and, when the task can be imported here, fit its signature.
    """

    name = forms.CharField(max_length=200, strip=True,
                           help_text="Unique. Runs of the schedule carry it (their periodic task name).")
    task = forms.CharField(max_length=200, strip=True,
                           widget=forms.TextInput(attrs={"list": "taskops-task-names", "size": 40,
                                                         "autocomplete": "off"}))
    task_forced = forms.BooleanField(
        required=False, label="Save this task name although no worker registers it",
        help_text="For a task whose workers are not running yet. The list flags it until one does.")
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2, "cols": 80}))
    args = json_args_field()
    kwargs = json_kwargs_field()
    queue = QueueNameField(max_length=200, required=False,
                           help_text="Empty: where the task's route sends it.")
    exchange = forms.CharField(max_length=200, required=False, strip=True)
    routing_key = forms.CharField(max_length=200, required=False, strip=True)
    priority = forms.IntegerField(
        required=False, min_value=0, max_value=255,
        help_text="0–9 on this deployment's queues (on Redis 0 is the most urgent). Empty: none.")
    headers = forms.CharField(
        required=False, initial="{}", widget=forms.Textarea(attrs={"rows": 2, "cols": 80}),
        help_text="A JSON object of message headers. Beat adds periodic_task_name itself.")
    start_time = _datetime_field("Start time", "Not before this time.")
    expires = _datetime_field("Expires", "After this time beat disables it.")
    expire_seconds = forms.IntegerField(
        required=False, min_value=0, max_value=2**31 - 1, label="Message expiry (seconds)",
        help_text="Each run is discarded if not started this many seconds after it is sent. "
                  "Give this or Expires, not both.")
    one_off = forms.BooleanField(required=False, label="One-off",
                                 help_text="Runs once, then beat disables it.")
    enabled = forms.BooleanField(required=False, initial=True)
    reason = forms.CharField(
        max_length=500, strip=True,
        widget=forms.TextInput(attrs={"size": 60, "placeholder": "why (kept with the version)"}),
        help_text="Required. Kept with this version of the schedule and in the audit log.")
    based_on = forms.CharField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args, task_names: tuple[str, ...] = (), names_complete: bool = True,
                 instance: PeriodicTask | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.task_names = task_names
        self.names_complete = names_complete
        self.instance = instance
        self.fields["queue"].existing = (instance.queue or "") if instance is not None else ""
        textareas_limit(self)

    def clean_name(self) -> str:
        name = self.cleaned_data["name"]
        others = PeriodicTask.objects.filter(name=name)
        if self.instance is not None:
            others = others.exclude(pk=self.instance.pk)
        if others.exists():
            raise forms.ValidationError("Another schedule already has this name.")
        return name

    def clean_headers(self) -> dict:
        text = self.cleaned_data.get("headers") or "{}"
        return json_value(text, dict, "object")

    @property
    def task_unknown(self) -> bool:
        """The task name is registered neither here nor on any live worker that answered."""
        return self.cleaned_data.get("task", "") not in self.task_names

    def clean(self):
        data = super().clean()
        task = data.get("task")
        if task and self.task_unknown and not data.get("task_forced"):
            where = ("here or on any live worker" if self.names_complete else
                     "here or on the workers that answered (some did not)")
            self.add_error("task", f"No task {task!r} is registered {where}. Pick one from the list, "
                                   "or tick the box below to save this name anyway.")
        if task and "args" in data and "kwargs" in data:
            try:
                arguments_check(task, data["args"], data["kwargs"])
            except forms.ValidationError as error:
                self.add_error("kwargs", error)
        if data.get("expires") and data.get("expire_seconds") is not None:
            self.add_error("expire_seconds", "Give Expires or a message expiry, not both.")
        schedule = data.get("schedule") or {}
        if schedule.get("kind") == "clocked":
            data["one_off"] = True  # django-celery-beat requires it of clocked schedules
            if data.get("enabled") and data["clocked_time"] <= timezone.now() and \
                    self._clocked_changed(data["clocked_time"]):
                self.add_error("clocked_time", "This time has passed: beat would run it at once. "
                                               "Pick a later time, or use Run now.")
        return data

    def _clocked_changed(self, when: datetime) -> bool:
        instance = self.instance
        return not (instance is not None and instance.clocked_id and
                    instance.clocked.clocked_time == when)

    def _raw_json(self, name: str) -> Any:
        """The field's JSON as written (typed values keep their {"__type__": ...} form)."""
        return json.loads(self.data.get(self.add_prefix(name)) or ("{}" if name != "args" else "[]"))

    def definition(self) -> dict[str, Any]:
        """The portable definition this form describes (see taskops.schedules.definitions)."""
        data = self.cleaned_data

        def when(value):
            return value.isoformat() if value else None

        return {
            "name": data["name"],
            "schedule": data["schedule"],
            "task": data["task"],
            "args": self._raw_json("args"),
            "kwargs": self._raw_json("kwargs"),
            "queue": data.get("queue") or None,
            "exchange": data.get("exchange") or None,
            "routing_key": data.get("routing_key") or None,
            "headers": self._raw_json("headers"),
            "priority": data.get("priority"),
            "expires": when(data.get("expires")),
            "expire_seconds": data.get("expire_seconds"),
            "one_off": bool(data.get("one_off")),
            "start_time": when(data.get("start_time")),
            "enabled": bool(data.get("enabled")),
            "description": data.get("description") or "",
        }

    @classmethod
    def initial_from(cls, definition: dict[str, Any] | None) -> dict[str, Any]:
        """Initial values of the form for a stored definition (None: a new schedule)."""
        if not definition:
            return {"args": "[]", "kwargs": "{}", "headers": "{}", "enabled": True}
        schedule = dict(definition.get("schedule") or {})
        initial = {k: v for k, v in definition.items() if k != "schedule"}
        initial.update(schedule)
        for name in ("args", "kwargs", "headers"):
            value = definition.get(name)
            default = [] if name == "args" else {}
            initial[name] = value if isinstance(value, str) else _json_text(
                value if value is not None else default)
        for name in ("start_time", "expires", "clocked_time"):
            if isinstance(initial.get(name), str):
                initial[name] = timezone.localtime(datetime.fromisoformat(initial[name]))
        return initial

    def fieldsets(self) -> list[tuple[str, str, list]]:
        """(title, kind or "", bound fields) in the order the page shows them."""
        group = [
            ("Task", "", ["name", "task", "task_forced", "description"]),
            ("Schedule", "", ["kind"]),
            *[(f"{kind.capitalize()} schedule", kind, fields) for kind, fields in KIND_FIELDS.items()],
            ("Arguments", "", ["args", "kwargs"]),
            ("Routing", "", ["queue", "exchange", "routing_key", "priority", "headers"]),
            ("Timing", "", ["start_time", "expires", "expire_seconds", "one_off", "enabled"]),
        ]
        return [(title, kind, [self[name] for name in names]) for title, kind, names in group]
