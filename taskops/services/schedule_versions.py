"""Schedule versions: keep each change to a schedule with its diff, for history and restore."""

from __future__ import annotations

from typing import Any

from django_celery_beat.models import PeriodicTask

from taskops.models import ScheduleVersion
from taskops.schedules.definitions import definition_changes, definition_of
from taskops.services.base import Actor


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
    schedule after it (None once deleted, then `name` says which).
    """
    after = definition_of(task) if task is not None else {}
    changes = definition_changes(before, after)
    if before is not None and not changes:
        return None
    return ScheduleVersion.objects.create(
        periodic_task=task,
        name=task.name if task is not None else (name or (before or {}).get("name", "")),
        actor=actor.db_user,
        actor_name=actor.name,
        action=action,
        reason=reason,
        definition=after,
        changes=changes,
        restored_from=restored_from,
    )
