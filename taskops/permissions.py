"""The one access check: can(user, action), used by every console view and action."""

from __future__ import annotations

from django.contrib.auth.models import AnonymousUser, User

# Console action -> the permission that allows it.
ACTION_PERMISSIONS: dict[str, str] = {
    "dashboard.view": "taskops.view_queue",
    "queue.view": "taskops.view_queue",
    "queue.pause": "taskops.pause_queue",
    "queue.purge": "taskops.purge_queue",
    "worker.view": "taskops.view_worker",
    "worker.control": "taskops.control_worker",
    "worker.shutdown": "taskops.shutdown_worker",
    "task.revoke": "taskops.revoke_task",
    "task.terminate": "taskops.terminate_task",
    "task.retry": "taskops.retry_task",
    "task.view": "taskops.view_task",
    "task.trigger": "taskops.trigger_task",
    "run.view": "django_celery_results.view_taskresult",
    "audit.view": "taskops.view_auditentry",
}


def can(user: User | AnonymousUser, action: str) -> bool:
    """True when `user` (active staff) may perform `action`; unknown actions are refused."""
    permission = ACTION_PERMISSIONS.get(action)
    if permission is None or not (user.is_active and user.is_staff):
        return False
    return user.has_perm(permission)
