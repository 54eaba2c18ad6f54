"""Retention: delete old task runs in batches, so cleanup never holds one huge delete; mask reprs stored before masking."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django_celery_results.models import TaskResult

from taskops.masking import stored_repr_mask
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


def results_reprs_mask(*, batch: int = 5000) -> tuple[int, int]:
    """Mask by key the argument reprs of every stored run (runs kept before masking, or before a
    key was added to TASKOPS_MASK_KEYS), in batches by id; return (runs read, runs changed).

    New runs are masked as they are written; this makes older ones unfindable by search too.
    """
    read = changed = 0
    last = 0
    while True:
        rows = list(TaskResult.objects.filter(id__gt=last).order_by("id")
                    .values_list("id", "task_args", "task_kwargs")[:batch])
        if not rows:
            return read, changed
        last, read = rows[-1][0], read + len(rows)
        masked = []
        for pk, *stored in rows:
            shown = [stored_repr_mask(value) for value in stored]
            if shown != stored:
                masked.append(TaskResult(id=pk, task_args=shown[0], task_kwargs=shown[1]))
        if masked:
            TaskResult.objects.bulk_update(masked, ["task_args", "task_kwargs"])
            changed += len(masked)
