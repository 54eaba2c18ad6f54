"""TaskRun: the results table seen through the console's own admin (a proxy, no table of its own)."""

from django_celery_results.models import TaskResult


class TaskRun(TaskResult):
    """One run of a task, as django-celery-results stores it."""

    class Meta:
        proxy = True
        default_permissions = ("view",)
        permissions = [("reveal_arguments", "Can reveal the masked arguments of task runs")]
        verbose_name = "task run"
        verbose_name_plural = "task runs"
