"""Django app configuration of the console app."""

from django.apps import AppConfig


class TaskOpsConfig(AppConfig):
    name = "taskops"
    verbose_name = "TaskOps Console"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from taskops.roles import roles_sync_after_migrate

        post_migrate.connect(roles_sync_after_migrate, sender=self)
        # Celery signal receivers: call capture and paused queues/kept revokes in workers,
        # the sampler and the dispatch record in beat.
        from taskops import beat_dispatch, capture, sampler, worker_hooks  # noqa: F401
