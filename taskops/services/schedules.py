"""Writes on schedules: save, enable/disable, clone, delete, restore and run now; each versioned and audited."""

from __future__ import annotations

import uuid
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django_celery_beat.models import PeriodicTask, PeriodicTasks
from kombu.utils.json import loads as kombu_loads

from taskops.capture import CapturedCall
from taskops.connection import BrokerUnavailable
from taskops.models import AuditEntry, ScheduleVersion
from taskops.schedules.definitions import definition_apply, definition_of
from taskops.selectors.schedules import SCHEDULE_RELATIONS, definition_fingerprint
from taskops.publish import calls_publish
from taskops.services.base import ActionOutcome, Actor, AuditedAction
from taskops.services.catalog import run_record_pending
from taskops.services.schedule_versions import schedule_version_record

# The header beat adds to every run of a schedule; django-celery-results stores it per run.
PERIODIC_TASK_HEADER = "periodic_task_name"
RUN_NOW_LIMIT = 100  # schedules run now in one action
NAMES_SHOWN = 5


def _names_text(names: list[str]) -> str:
    shown = ", ".join(names[:NAMES_SHOWN])
    return shown + (f" and {len(names) - NAMES_SHOWN} more" if len(names) > NAMES_SHOWN else "")


def _target(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{len(names)} schedules"


def _schedule_action(actor: Actor, action: str, target: str, params: dict, reason: str, *,
                     permission: str = "schedule.edit") -> AuditedAction:
    """A change of schedules: allowed for this person, and with a reason."""
    act = AuditedAction(actor, action, target, params, reason)
    act.refuse_unless_allowed(permission)
    act.refuse_without_reason("Give a reason: it is kept with the schedule's version and in the "
                              "audit log.")
    return act


def _error_text(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        if hasattr(exc, "message_dict"):
            return "; ".join(f"{field}: {' '.join(errors)}" if field != "__all__" else " ".join(errors)
                             for field, errors in exc.message_dict.items())
        return " ".join(exc.messages)
    if isinstance(exc, IntegrityError):
        return "another schedule already has this name"
    return str(exc)


def _tasks(task_ids: list[int]) -> list[PeriodicTask]:
    return list(PeriodicTask.objects.select_related(*SCHEDULE_RELATIONS)
                .filter(pk__in=task_ids).order_by("name"))


def schedule_save(
    *,
    actor: Actor,
    definition: dict[str, Any],
    reason: str,
    task: PeriodicTask | None = None,
    based_on: str = "",
    task_forced: bool = False,
) -> ActionOutcome:
    """Create a schedule (task None) or change one to `definition`, through the model so beat sees it.

    `based_on` is the fingerprint of the definition the editor started from: when the schedule
    changed meanwhile, nothing is saved. `task_forced` records that the task name is registered
    nowhere the console could see and was saved anyway. Raises ActionRefused (audited).
    """
    creating = task is None
    action = "schedule.create" if creating else "schedule.edit"
    name = str(definition.get("name") or "")
    params = {"name": name, "task": definition.get("task"), "id": None if creating else task.pk}
    if task_forced:
        params["task_forced"] = True
    act = _schedule_action(actor, action, name, params, reason)
    try:
        with transaction.atomic():
            if creating:
                if PeriodicTask.objects.filter(name=name).exists():
                    raise ValidationError({"name": ["another schedule already has this name"]})
                current, before = PeriodicTask(), None
            else:
                current = (PeriodicTask.objects.select_for_update(of=("self",)).select_related(*SCHEDULE_RELATIONS)
                           .get(pk=task.pk))
                before = definition_of(current)
                if based_on and definition_fingerprint(before) != based_on:
                    raise ValidationError("Someone changed this schedule after you opened it: "
                                          "reload the page to see their change, then edit again.")
            saved = definition_apply(definition, task=current)
            version = schedule_version_record(
                actor=actor, action=ScheduleVersion.Action.CREATED if creating else
                ScheduleVersion.Action.EDITED, reason=reason, before=before, task=saved)
    except (ValidationError, IntegrityError, ValueError, KeyError, PeriodicTask.DoesNotExist) as exc:
        act.refuse(f"Not saved: {_error_text(exc)}")
    params["id"] = saved.pk
    act.target = saved.name
    changes = [c["field"] for c in version.changes] if version else []
    if creating:
        message = f"Schedule {saved.name} created ({'enabled' if saved.enabled else 'disabled'})."
    elif changes:
        message = f"Schedule {saved.name} saved: {', '.join(changes)} changed."
    else:
        message = f"Nothing changed in schedule {saved.name}."
    if task_forced:
        message += f" Its task {saved.task} is not registered on any worker the console could ask."
    return act.finish(ActionOutcome(
        AuditEntry.Outcome.OK, message,
        {"id": saved.pk, "version": version.pk if version else None, "changes": changes}))


def schedule_enable(*, actor: Actor, task_ids: list[int], enabled: bool, reason: str) -> ActionOutcome:
    """Enable or disable schedules in bulk; beat is told through PeriodicTasks.update_changed()."""
    action = "schedule.enable" if enabled else "schedule.disable"
    tasks = _tasks(task_ids)
    names = [t.name for t in tasks]
    params = {"names": names[:100], "count": len(names)}
    act = _schedule_action(actor, action, _target(names), params, reason)
    changing = [t for t in tasks if t.enabled != enabled]
    with transaction.atomic():
        befores = {t.pk: definition_of(t) for t in changing}
        # As PeriodicTask.save() does: a disabled schedule forgets when it last ran, and the change
        # is dated (update() skips auto_now), so beat counts an enabled schedule from its enabling.
        fields = {"enabled": enabled, "date_changed": timezone.now()}
        if not enabled:
            fields["last_run_at"] = None
        PeriodicTask.objects.filter(pk__in=list(befores)).update(**fields)
        PeriodicTasks.update_changed()  # a bulk update is not seen by beat otherwise
        for task in changing:
            task.enabled = enabled
            schedule_version_record(
                actor=actor, reason=reason, before=befores[task.pk], task=task,
                action=ScheduleVersion.Action.ENABLED if enabled else ScheduleVersion.Action.DISABLED)
    word = "Enabled" if enabled else "Disabled"
    message = f"{word} {len(changing)} schedule{'s' if len(changing) != 1 else ''}"
    message += f": {_names_text([t.name for t in changing])}." if changing else "."
    unchanged = len(tasks) - len(changing)
    if unchanged:
        message += f" {unchanged} already {'enabled' if enabled else 'disabled'}."
    return act.finish(ActionOutcome(
        AuditEntry.Outcome.OK, message, {"changed": [t.name for t in changing][:100]}))


def _free_name(name: str) -> str:
    """"<name> (copy)", or "(copy 2)", ... : the first such name no schedule has."""
    base = name[:180]
    taken = set(PeriodicTask.objects.filter(name__startswith=f"{base} (copy")
                .values_list("name", flat=True))
    for n in range(1, 1000):
        candidate = f"{base} (copy)" if n == 1 else f"{base} (copy {n})"
        if candidate not in taken:
            return candidate
    return f"{base} ({uuid.uuid4().hex[:8]})"


def schedule_clone(*, actor: Actor, task_ids: list[int], reason: str) -> ActionOutcome:
    """Copy schedules under new names ("<name> (copy)"), disabled, so the copy never doubles the runs."""
    tasks = _tasks(task_ids)
    names = [t.name for t in tasks]
    params = {"names": names[:100], "count": len(names)}
    act = _schedule_action(actor, "schedule.clone", _target(names), params, reason)
    clones: dict[str, dict] = {}
    try:
        with transaction.atomic():
            for task in tasks:
                definition = {**definition_of(task), "enabled": False}
                definition["name"] = _free_name(task.name)
                clone = definition_apply(definition, task=PeriodicTask())
                schedule_version_record(actor=actor, action=ScheduleVersion.Action.CLONED,
                                        reason=reason, before=None, task=clone)
                clones[task.name] = {"id": clone.pk, "name": clone.name}
    except (ValidationError, IntegrityError, ValueError) as exc:
        act.refuse(f"Nothing was cloned: {_error_text(exc)}")
    message = (f"Cloned {len(clones)} schedule{'s' if len(clones) != 1 else ''} (disabled): "
               + _names_text([c["name"] for c in clones.values()]) + ".")
    return act.finish(ActionOutcome(AuditEntry.Outcome.OK, message, {"clones": clones}))


def schedule_delete(*, actor: Actor, task: PeriodicTask, reason: str) -> ActionOutcome:
    """Delete a schedule; its last definition stays in its versions, so it can be restored."""
    params = {"id": task.pk, "task": task.task}
    act = _schedule_action(actor, "schedule.delete", task.name, params, reason)
    with transaction.atomic():
        before = definition_of(task)
        name = task.name
        task.delete()  # PeriodicTask.delete() tells beat
        version = schedule_version_record(actor=actor, action=ScheduleVersion.Action.DELETED,
                                          reason=reason, before=before, task=None, name=name)
    return act.finish(ActionOutcome(
        AuditEntry.Outcome.OK,
        f"Schedule {name} deleted. Its versions are kept: it can be restored from them.",
        {"version": version.pk if version else None}))


def schedule_restore(*, actor: Actor, version_id: int, reason: str) -> ActionOutcome:
    """Put a schedule back as a version kept it; the restore is itself a new version."""
    version = ScheduleVersion.objects.select_related("periodic_task").filter(pk=version_id).first()
    target = version.name if version else f"version {version_id}"
    act = _schedule_action(actor, "schedule.restore", target, {"version": version_id}, reason)
    if version is None:
        act.refuse(f"There is no version {version_id}.")
    if not version.definition:
        act.refuse("This version records a deletion: restore one of the versions before it.")
    name = version.definition.get("name", "")
    try:
        with transaction.atomic():
            task = version.periodic_task or PeriodicTask.objects.filter(name=name).first()
            recreated = task is None
            task = PeriodicTask() if recreated else (
                PeriodicTask.objects.select_for_update(of=("self",)).select_related(*SCHEDULE_RELATIONS)
                .get(pk=task.pk))
            if PeriodicTask.objects.filter(name=name).exclude(pk=task.pk).exists():
                raise ValidationError(f"Another schedule is called {name} now: rename or delete it "
                                      "first.")
            before = None if recreated else definition_of(task)
            saved = definition_apply(version.definition, task=task)
            if recreated:  # the deleted schedule's history continues on the restored one
                ScheduleVersion.objects.filter(periodic_task__isnull=True, name=name).update(
                    periodic_task=saved)
            new_version = schedule_version_record(
                actor=actor, action=ScheduleVersion.Action.RESTORED, reason=reason, before=before,
                task=saved, restored_from=version)
    except (ValidationError, IntegrityError, ValueError, KeyError) as exc:
        act.refuse(f"Not restored: {_error_text(exc)}")
    act.params["id"] = saved.pk
    act.target = saved.name
    if new_version is None:
        message = f"Schedule {saved.name} is already as version {version.pk} keeps it: nothing changed."
    else:
        message = (f"Schedule {saved.name} restored to version {version.pk} "
                   f"({version.created_at:%Y-%m-%d %H:%M} by {version.actor_name}).")
    return act.finish(ActionOutcome(
        AuditEntry.Outcome.OK, message,
        {"id": saved.pk, "version": new_version.pk if new_version else None}))


def _beat_call(task: PeriodicTask) -> tuple[CapturedCall, dict]:
    """The call beat sends for `task` and its send options; ValueError when its JSON is broken."""
    try:
        args = kombu_loads(task.args or "[]")
        kwargs = kombu_loads(task.kwargs or "{}")
        headers = kombu_loads(task.headers or "{}")
    except (TypeError, ValueError) as exc:
        raise ValueError(f"its arguments or headers are not valid JSON ({exc})") from exc
    if not isinstance(args, list) or not isinstance(kwargs, dict) or not isinstance(headers, dict):
        raise ValueError("its args must be a JSON list, its kwargs and headers JSON objects")
    if task.expires is not None and task.expires <= timezone.now():
        raise ValueError(f"it expired at {task.expires:%Y-%m-%d %H:%M %Z}, so beat no longer runs it")
    # As django-celery-beat's ModelEntry: queue, exchange, routing key and priority when set,
    # the expiry, and the schedule's headers with its name added.
    options = {k: getattr(task, k) for k in ("queue", "exchange", "routing_key") if getattr(task, k)}
    if task.expires_:
        options["expires"] = task.expires_
    call = CapturedCall(task=task.task, args=args, kwargs=kwargs, priority=task.priority,
                        headers={**headers, PERIODIC_TASK_HEADER: task.name})
    return call, options


def schedule_run_now(*, actor: Actor, task_ids: list[int], reason: str = "") -> ActionOutcome:
    """Send each schedule's task now, exactly as beat would (routing, priority, headers, expiry).

    Each run carries the schedule's name (the periodic_task_name header), so it shows in the
    schedule's history; one audit entry per schedule, with the new task id.
    """
    tasks = _tasks(task_ids)
    names = [t.name for t in tasks]
    act = AuditedAction(actor, "schedule.run", _target(names), {"count": len(names)}, reason)
    act.refuse_unless_allowed("schedule.run")
    if len(tasks) > RUN_NOW_LIMIT:
        act.refuse(f"Run now takes at most {RUN_NOW_LIMIT} schedules at a time.")
    sent: dict[str, str] = {}
    problems: dict[str, str] = {}
    for task in tasks:
        outcome = _run_one(actor, task, reason)
        if outcome.ok:
            sent[task.name] = outcome.detail["task_id"]
        else:
            problems[task.name] = outcome.message
    if len(tasks) == 1:
        return outcome
    message = (f"Ran {len(sent)} schedule{'s' if len(sent) != 1 else ''} now: "
               f"{_names_text(list(sent))}." if sent else "Nothing was run.")
    if problems:
        message += " " + " ".join(problems.values())
    level = (AuditEntry.Outcome.OK if not problems else
             AuditEntry.Outcome.PARTIAL if sent else AuditEntry.Outcome.FAILED)
    return ActionOutcome(level, message, {"runs": sent, "problems": problems})


def _run_one(actor: Actor, task: PeriodicTask, reason: str) -> ActionOutcome:
    params: dict[str, Any] = {"id": task.pk, "task": task.task}
    act = AuditedAction(actor, "schedule.run", task.name, params, reason)
    try:
        call, options = _beat_call(task)
    except ValueError as exc:
        return act.finish(ActionOutcome(AuditEntry.Outcome.REFUSED, f"{task.name} was not run: {exc}."))
    task_id = str(uuid.uuid4())
    params.update({"args": task.args, "kwargs": task.kwargs, "priority": call.priority,
                   "headers": call.headers,
                   **{k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in options.items()}})
    params["task_id"] = task_id
    act.intent()
    try:
        calls_publish([(task_id, call, None)], **options)
    except BrokerUnavailable as exc:
        return act.broker_failed(exc, f"Running {task.name}")
    run_record_pending(task_id, call.task, call.args, call.kwargs, periodic_task_name=task.name)
    where = options.get("queue") or "its routed queue"
    priority = f", priority {call.priority}" if call.priority is not None else ""
    return act.finish(ActionOutcome(
        AuditEntry.Outcome.OK, f"Ran {task.name} now: {call.task} sent to {where}{priority} as {task_id}.",
        {"task_id": task_id}))
