"""Revealing the hidden argument values of a run: a permission of its own, each reveal audited first."""

from __future__ import annotations

from django_celery_results.models import TaskResult

from taskops.models import AuditEntry
from taskops.permissions import can
from taskops.services.base import ActionOutcome, Actor, audit_record, reason_required, refused


def run_reveal(*, actor: Actor, task_id: str, reason: str) -> ActionOutcome:
    """Record that `actor` sees the real arguments and result of run `task_id`, before they are shown.

    Refused (audited, ActionRefused) without the `run.reveal` permission, a typed reason, or the run.
    """
    params = {"task_id": task_id}
    if actor.db_user is None or not can(actor.db_user, "run.reveal"):
        refused(actor, "run.reveal", task_id, params, reason, "You may not reveal hidden values.")
    reason_required(actor, "run.reveal", task_id, params, reason,
                    message="Type why you need to see the hidden values (kept in the audit log).")
    if not TaskResult.objects.filter(task_id=task_id).exists():
        refused(actor, "run.reveal", task_id, params, reason, f"There is no run {task_id}.")
    return audit_record(actor, "run.reveal", task_id, params, reason, ActionOutcome(
        AuditEntry.Outcome.OK, f"The hidden values of run {task_id} are shown to {actor.name} "
                               "on this page only (recorded in the audit log)."))
