"""The console's own models: audit trail, remembered operations state, and admin page anchors."""

from taskops.models.audit import AuditEntry
from taskops.models.operations import PendingRevoke, QueueDepthSample, QueuePause, WorkerSeen
from taskops.models.pages import Queue, Task, Worker
from taskops.models.retries import RetryJob, RetryJobItem, RunRetry
from taskops.models.runs import TaskRun

__all__ = [
    "AuditEntry",
    "PendingRevoke",
    "Queue",
    "QueueDepthSample",
    "QueuePause",
    "RetryJob",
    "RetryJobItem",
    "RunRetry",
    "Task",
    "TaskRun",
    "Worker",
    "WorkerSeen",
]
