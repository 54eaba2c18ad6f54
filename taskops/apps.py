"""Django app configuration of the console app."""

from django.apps import AppConfig


class TaskOpsConfig(AppConfig):
    name = "taskops"
    verbose_name = "TaskOps Console"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_login_failed
        from django.core import checks
        from django.db.models.signals import post_migrate

        from taskops.checks import shared_cache_check
        from taskops.roles import roles_sync_after_migrate
        from taskops.services.access import login_failed_receiver

        post_migrate.connect(roles_sync_after_migrate, sender=self)
        checks.register(shared_cache_check, checks.Tags.caches)
        user_login_failed.connect(login_failed_receiver, dispatch_uid="taskops.login_failed")
        # Celery signal receivers: call capture and paused queues/kept revokes in workers,
        # the sampler and the dispatch record in beat.
        from taskops import beat_dispatch, capture, sampler, worker_hooks  # noqa: F401
