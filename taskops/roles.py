"""The console's groups (Support, Operations, Managers) and the permissions each one holds."""

from __future__ import annotations

from django.apps import apps as global_apps
from django.contrib.auth.management import create_permissions

SUPPORT = "Support"
OPERATIONS = "Operations"
MANAGERS = "Managers"

_RESULTS_VIEW = [
    "django_celery_results.view_taskresult",
    "django_celery_results.view_groupresult",
    "django_celery_results.view_chordcounter",
]
_BEAT_MODELS = [
    "periodictask",
    "crontabschedule",
    "intervalschedule",
    "solarschedule",
    "clockedschedule",
]
_BEAT_VIEW = [f"django_celery_beat.view_{m}" for m in _BEAT_MODELS]
_BEAT_EDIT = [
    f"django_celery_beat.{verb}_{m}" for m in _BEAT_MODELS for verb in ("add", "change", "delete")
]

_CONSOLE_VIEW = [
    "taskops.view_queue", "taskops.view_worker", "taskops.view_task", "taskops.view_report",
    "taskops.view_scheduleversion",
]
_TASK_CONTROL = [
    "taskops.revoke_task", "taskops.terminate_task", "taskops.retry_task", "taskops.trigger_task"
]
_CLUSTER_CONTROL = [
    "taskops.pause_queue",
    "taskops.purge_queue",
    "taskops.control_worker",
    "taskops.shutdown_worker",
    "taskops.view_auditentry",
    "taskops.export_auditentry",
    "taskops.view_pendingaction",
    "taskops.import_schedule",
    "taskops.run_schedule",
]

# "app_label.codename" per group: the one table of who may do what.
ROLE_PERMISSIONS: dict[str, list[str]] = {
    # Support may terminate, so it sees (and decides on) pending approvals too.
    SUPPORT: [*_RESULTS_VIEW, *_BEAT_VIEW, *_CONSOLE_VIEW, *_TASK_CONTROL,
              "taskops.view_pendingaction"],
    OPERATIONS: [
        *_RESULTS_VIEW, *_BEAT_VIEW, *_BEAT_EDIT, *_CONSOLE_VIEW, *_TASK_CONTROL, *_CLUSTER_CONTROL,
        "taskops.export_report",
    ],
    MANAGERS: [*_RESULTS_VIEW, *_BEAT_VIEW, *_CONSOLE_VIEW, "taskops.export_report"],
}

_APPS_WITH_ROLE_PERMISSIONS = ("django_celery_results", "django_celery_beat", "taskops")


def roles_sync(*, apps=global_apps, verbosity: int = 0, using: str = "default") -> dict[str, int]:
    """Create the console's groups and give each exactly its permissions; return counts per group."""
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for label in _APPS_WITH_ROLE_PERMISSIONS:
        create_permissions(global_apps.get_app_config(label), verbosity=0, using=using)
    counts: dict[str, int] = {}
    for group_name, perm_names in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.using(using).get_or_create(name=group_name)
        wanted = []
        for full_name in perm_names:
            app_label, codename = full_name.split(".", 1)
            wanted.append(
                Permission.objects.using(using).get(
                    content_type__app_label=app_label, codename=codename
                )
            )
        group.permissions.set(wanted)
        counts[group_name] = len(wanted)
        if verbosity:
            print(f"group {group_name}: {len(wanted)} permissions")
    return counts


def roles_sync_after_migrate(sender, *, using: str = "default", verbosity: int = 1, **kwargs) -> None:
    """post_migrate hook: every migrated database has the console's groups."""
    roles_sync(using=using, verbosity=0)
