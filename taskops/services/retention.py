"""Retention: delete old task runs in batches, so cleanup never holds one huge delete."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django_celery_results.models import TaskResult

from taskops.models import RunRetry


def results_cleanup(*, older_than: datetime, batch: int = 5000, states: tuple[str, ...] = ()) -> int:
    """Delete finished runs done before `older_than` (optionally only some states); return how many."""
    finished = ("SUCCESS", "FAILURE", "REVOKED")
    selected = TaskResult.objects.filter(date_done__lt=older_than,
                                         status__in=states or finished)
    deleted = 0
    while True:
        ids = list(selected.order_by("id").values_list("id", flat=True)[:batch])
        if not ids:
            return deleted
        with transaction.atomic():
            task_ids = list(TaskResult.objects.filter(id__in=ids).values_list("task_id", flat=True))
            RunRetry.objects.filter(original_task_id__in=task_ids).delete()
            deleted += TaskResult.objects.filter(id__in=ids).delete()[0]
