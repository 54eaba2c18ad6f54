"""Reads: what the pages show, as plain dataclasses (one module per area)."""

from taskops.selectors.live import (
    BeatStatus,
    ClusterReading,
    FailureRow,
    QueueDetail,
    QueueRow,
    SPARKLINE_POINTS,
    WorkerDetail,
    WorkerRow,
    beat_status,
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
    "BeatStatus",
    "ClusterReading",
    "FailureRow",
    "QueueDetail",
    "QueueRow",
    "SPARKLINE_POINTS",
    "WorkerDetail",
    "WorkerRow",
    "beat_status",
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
