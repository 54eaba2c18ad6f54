"""Table-less models that anchor the console's admin pages and carry their permissions."""

from django.db import models


class Queue(models.Model):
    """The admin's "Queues" page (live data comes from the broker, not a table)."""

    class Meta:
        managed = False
        default_permissions = ("view",)
        permissions = [
            ("pause_queue", "Can pause and resume queues"),
            ("purge_queue", "Can purge queues"),
        ]


class Worker(models.Model):
    """The admin's "Workers" page (live data comes from Celery's remote control)."""

    class Meta:
        managed = False
        default_permissions = ("view",)
        permissions = [
            ("control_worker", "Can resize pools, autoscale and set rate limits"),
            ("shutdown_worker", "Can shut workers down"),
        ]


class Task(models.Model):
    """Tasks as a whole: the catalog page, and the permissions to revoke, retry and send them."""

    class Meta:
        managed = False
        verbose_name = "task"
        verbose_name_plural = "task catalog"
        default_permissions = ("view",)
        permissions = [
            ("revoke_task", "Can revoke queued tasks"),
            ("terminate_task", "Can terminate running tasks"),
            ("retry_task", "Can retry runs"),
            ("trigger_task", "Can send tasks from the catalog"),
        ]


class Report(models.Model):
    """Report runs for managers: which tasks are reports comes from settings (TASKOPS_REPORTS)."""

    class Meta:
        managed = False
        default_permissions = ("view",)
        permissions = [("export_report", "Can export report runs")]
