"""The console's own models: audit trail, remembered operations state, and admin page anchors."""

from taskops.models.approvals import PendingAction
from taskops.models.audit import AuditEntry
from taskops.models.operations import (
    PendingRevoke,
    QueueDepthSample,
    QueuePause,
    QueueSeen,
    WorkerSeen,
)
from taskops.models.pages import Queue, Report, Task, Worker
from taskops.models.retries import RetryJob, RetryJobItem, RunRetry
from taskops.models.runs import TaskRun
from taskops.models.schedules import ScheduleVersion

__all__ = [
    "AuditEntry",
    "PendingAction",
    "PendingRevoke",
    "Queue",
    "QueueDepthSample",
    "QueuePause",
    "QueueSeen",
    "Report",
    "RetryJob",
    "RetryJobItem",
    "RunRetry",
    "ScheduleVersion",
    "Task",
    "TaskRun",
    "Worker",
    "WorkerSeen",
]
