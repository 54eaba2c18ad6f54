"""The one access check: can(user, action), used by every console view and action."""

from __future__ import annotations

import fnmatch

from django.contrib.auth.models import AnonymousUser, User

from taskops.conf import config

# Console action -> the permission that allows it.
ACTION_PERMISSIONS: dict[str, str] = {
    "dashboard.view": "taskops.view_queue",
    "queue.view": "taskops.view_queue",
    "queue.pause": "taskops.pause_queue",
    "queue.purge": "taskops.purge_queue",
    # Returning stranded messages to their queue: whoever may pause and resume it.
    "queue.restore": "taskops.pause_queue",
    "worker.view": "taskops.view_worker",
    "worker.control": "taskops.control_worker",
    "worker.shutdown": "taskops.shutdown_worker",
    "task.revoke": "taskops.revoke_task",
    "task.terminate": "taskops.terminate_task",
    "task.retry": "taskops.retry_task",
    "task.view": "taskops.view_task",
    "task.trigger": "taskops.trigger_task",
    "run.view": "django_celery_results.view_taskresult",
    # Seeing the values hidden by TASKOPS_MASK_KEYS or by the sender: no group by default.
    "run.reveal": "taskops.reveal_arguments",
    "audit.view": "taskops.view_auditentry",
    "audit.export": "taskops.export_auditentry",
    "approval.view": "taskops.view_pendingaction",
    "schedule.view": "django_celery_beat.view_periodictask",
    "schedule.export": "django_celery_beat.view_periodictask",
    "schedule.edit": "django_celery_beat.change_periodictask",
    "schedule.import": "taskops.import_schedule",
    "schedule.run": "taskops.run_schedule",
    "report.view": "taskops.view_report",
    "report.export": "taskops.export_report",
    "metrics.view": "taskops.view_queue",
}

# Actions that change something; TASKOPS_READ_ONLY turns every one of them off.
MUTATING_ACTIONS = frozenset({
    "queue.pause", "queue.purge", "queue.restore", "worker.control", "worker.shutdown", "task.revoke",
    "task.terminate", "task.retry", "task.trigger", "schedule.edit", "schedule.import",
    "schedule.run",
})


def read_only() -> bool:
    """True when TASKOPS_READ_ONLY turns every mutation off."""
    return config.read_only


READ_ONLY_REFUSAL = "The console is in read-only mode (TASKOPS_READ_ONLY): nothing can be changed."


def action_refusal(user: User | AnonymousUser, action: str) -> str:
    """Why `user` may not perform `action`, in words for that person."""
    if action in MUTATING_ACTIONS and read_only():
        return READ_ONLY_REFUSAL
    return f"You may not {action.replace('.', ' ').replace('_', ' ')}: your role does not allow it."


def can(user: User | AnonymousUser, action: str) -> bool:
    """True when `user` (active staff) may perform `action`; unknown actions are refused."""
    permission = ACTION_PERMISSIONS.get(action)
    if permission is None or not (user.is_active and user.is_staff):
        return False
    if action in MUTATING_ACTIONS and read_only():
        return False
    return user.has_perm(permission)


def task_name_refusal(user: User | AnonymousUser | None, name: str) -> str:
    """Why `user` may not send or retry task `name` ("" when they may; None is the console itself).

    TASKOPS_TASK_DENY (Celery's and the console's own tasks by default) holds for everyone.
    TASKOPS_TASK_ALLOW restricts a user only when every group they are in has an entry: they
    may then send what any of those entries matches. Superusers are never restricted by it.
    """
    if not name:
        return "A run without a task name cannot be sent: there is no task to send."
    denied = next((p for p in config.task_deny if fnmatch.fnmatchcase(name, p)), None)
    if denied is not None:
        return f"{name} is not sent from the console: it matches {denied!r} in TASKOPS_TASK_DENY."
    if user is None or user.is_superuser or not user.is_authenticated:
        return ""
    allowed = config.task_allow
    groups = list(user.groups.values_list("name", flat=True))
    if not groups or any(group not in allowed for group in groups):
        return ""
    patterns = [pattern for group in groups for pattern in allowed[group]]
    if any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns):
        return ""
    return (f"Your group{'s' if len(groups) > 1 else ''} ({', '.join(sorted(groups))}) may send "
            f"only {', '.join(patterns) or 'no task'} (TASKOPS_TASK_ALLOW): not {name}.")
