"""Revealing the hidden argument values of a run: a permission of its own, each reveal audited first."""

from __future__ import annotations

from django_celery_results.models import TaskResult

from taskops.models import AuditEntry
from taskops.services.base import ActionOutcome, Actor, AuditedAction


def run_reveal(*, actor: Actor, task_id: str, reason: str) -> ActionOutcome:
    """Record that `actor` sees the real arguments and result of run `task_id`, before they are shown.

    Refused (audited, ActionRefused) without the `run.reveal` permission, a typed reason, or the run.
    """
    act = AuditedAction(actor, "run.reveal", task_id, {"task_id": task_id}, reason)
    if actor.db_user is None:  # the console itself never needs to see them
        act.refuse("You may not reveal hidden values.")
    act.refuse_unless_allowed("run.reveal")
    act.refuse_without_reason("Type why you need to see the hidden values (kept in the audit log).")
    if not TaskResult.objects.filter(task_id=task_id).exists():
        act.refuse(f"There is no run {task_id}.")
    return act.finish(ActionOutcome(
        AuditEntry.Outcome.OK, f"The hidden values of run {task_id} are shown to {actor.name} "
                               "on this page only (recorded in the audit log)."))
