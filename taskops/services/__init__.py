"""Writes: every console action, each one audited with its outcome (one module per area)."""

from taskops.services.approvals import (
    approval_cancel,
    approval_decide,
)
from taskops.services.base import ActionOutcome, ActionRefused, Actor, AuditedAction, OutcomeNotRecorded
from taskops.services.catalog import task_send
from taskops.services.schedule_transfer import (
    schedule_export,
    schedule_import,
    schedule_import_preview,
)
from taskops.services.schedules import (
    schedule_clone,
    schedule_delete,
    schedule_enable,
    schedule_restore,
    schedule_run_now,
    schedule_save,
)
from taskops.services.retries import task_retry, task_retry_edited
from taskops.services.reveal import run_reveal
from taskops.services.retry_jobs import retry_job_create, retry_job_process, retry_job_resume
from taskops.services.live import (
    RATE_LIMIT_RE,
    WorkerStartPlan,
    cluster_sample,
    queue_pause,
    queue_purge,
    queue_resume,
    queue_stranded_restore,
    task_revoke,
    worker_autoscale,
    worker_became_ready,
    worker_came_online,
    worker_pool_resize,
    worker_rate_limit,
    worker_shutdown,
    worker_stopping,
    worker_went_offline,
)

__all__ = [
    "approval_cancel",
    "approval_decide",
    "AuditedAction",
    "OutcomeNotRecorded",
    "RATE_LIMIT_RE",
    "ActionOutcome",
    "ActionRefused",
    "Actor",
    "WorkerStartPlan",
    "cluster_sample",
    "queue_pause",
    "queue_purge",
    "queue_resume",
    "queue_stranded_restore",
    "retry_job_create",
    "retry_job_process",
    "schedule_clone",
    "schedule_delete",
    "schedule_enable",
    "schedule_export",
    "schedule_import",
    "schedule_import_preview",
    "schedule_restore",
    "schedule_run_now",
    "schedule_save",
    "retry_job_resume",
    "run_reveal",
    "task_retry",
    "task_retry_edited",
    "task_revoke",
    "task_send",
    "worker_autoscale",
    "worker_became_ready",
    "worker_came_online",
    "worker_pool_resize",
    "worker_rate_limit",
    "worker_shutdown",
    "worker_stopping",
    "worker_went_offline",
]
