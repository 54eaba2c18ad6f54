"""Schedule versions: keep each change to a schedule with its diff, and the state it changed, for history and restore."""

from __future__ import annotations

from typing import Any

from django_celery_beat.models import PeriodicTask

from taskops.models import ScheduleVersion
from taskops.schedules.definitions import definition_changes, definition_of
from taskops.services.base import Actor


# Who made a state the console found: seed data, the stock admin, a shell or code.
OUTSIDE_ACTOR = "outside the console"
FOUND_REASON = ("The schedule as the console found it before the next change: it was created or "
                "changed outside the console (seed data, the stock admin, code).")


def _found_record(*, before: dict[str, Any], task: PeriodicTask | None, name: str) -> None:
    """Keep `before` as a restorable version unless the schedule's newest version already keeps it.

    A schedule made or changed outside the console has no version of that state: without this,
    the first console change could not be undone.
    """
    kept = ScheduleVersion.objects.order_by("-created_at", "-id")
    kept = (kept.filter(periodic_task=task) if task is not None
            else kept.filter(periodic_task__isnull=True, name=name))  # just deleted: by name
    newest = kept.only("definition").first()
    if newest is not None and newest.definition == before:
        return
    ScheduleVersion.objects.create(
        periodic_task=task, name=before.get("name") or name, actor=None, actor_name=OUTSIDE_ACTOR,
        action=ScheduleVersion.Action.FOUND, reason=FOUND_REASON, definition=before,
        changes=definition_changes(newest.definition, before) if newest is not None else [],
    )


def schedule_version_record(
    *,
    actor: Actor,
    action: str,
    reason: str,
    before: dict[str, Any] | None,
    task: PeriodicTask | None,
    name: str | None = None,
    restored_from: ScheduleVersion | None = None,
) -> ScheduleVersion | None:
    """Keep the schedule's state after a change, with the diff from `before`; None when nothing changed.

    `before` is the definition before the change (None for a new schedule); `task` is the
    schedule after it (None once deleted, then `name` says which). When `before` is not what the
    schedule's newest version keeps (a state made outside the console), it is kept first, as a
    "found" version, so the change can be undone.
    """
    after = definition_of(task) if task is not None else {}
    changes = definition_changes(before, after)
    if before is not None and not changes:
        return None
    name = task.name if task is not None else (name or (before or {}).get("name", ""))
    if before is not None:
        _found_record(before=before, task=task, name=name)
    return ScheduleVersion.objects.create(
        periodic_task=task,
        name=name,
        actor=actor.db_user,
        actor_name=actor.name,
        action=action,
        reason=reason,
        definition=after,
        changes=changes,
        restored_from=restored_from,
    )
