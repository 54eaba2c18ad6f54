"""Reads: what the pages show, as plain dataclasses (one module per area)."""

from taskops.selectors.catalog import (
    CatalogEntry,
    TaskCatalog,
    TaskDetail,
    TaskParameter,
    task_catalog,
    task_detail,
)
from taskops.selectors.live import (
    ClusterReading,
    FailureRow,
    QueueDetail,
    QueueRow,
    SPARKLINE_POINTS,
    WorkerDetail,
    WorkerRow,
    cluster_reading,
    configured_queue_names,
    failure_recent,
    queue_detail,
    worker_detail,
)
from taskops.selectors.runs import (
    RetryJobDetail,
    RunDetail,
    display_json,
    retry_job_detail,
    run_detail,
    run_search_filter,
)

__all__ = [
    "CatalogEntry",
    "TaskCatalog",
    "TaskDetail",
    "TaskParameter",
    "task_catalog",
    "task_detail",
    "ClusterReading",
    "FailureRow",
    "QueueDetail",
    "QueueRow",
    "SPARKLINE_POINTS",
    "WorkerDetail",
    "WorkerRow",
    "cluster_reading",
    "configured_queue_names",
    "failure_recent",
    "queue_detail",
    "worker_detail",
    "RetryJobDetail",
    "RunDetail",
    "display_json",
    "retry_job_detail",
    "run_detail",
    "run_search_filter",
]
