"""Reads for /metrics: the shared cluster reading, beat's signs of life, recent runs and retries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count
from django.utils import timezone
from django_celery_results.models import TaskResult

from taskops import cache
from taskops.models import RunRetry
from taskops.selectors.beat_health import BeatHealth, beat_health_shared
from taskops.selectors.live import ClusterReading, cluster_reading

RUNS_WINDOW = timedelta(hours=24)
# Prometheus servers (often two) scrape every 15-60 s: they share one database reading.
DB_READING_TTL = 10.0
DB_CACHE_KEY = "taskops:metrics:db"


@dataclass(frozen=True)
class DatabaseReading:
    taken_at: datetime
    runs: tuple[tuple[str, str, int], ...]  # (task name, state, runs) in the last RUNS_WINDOW
    retries: int  # retries sent by the console in the last RUNS_WINDOW


@dataclass(frozen=True)
class MetricsReading:
    cluster: ClusterReading
    database: DatabaseReading
    beat: BeatHealth  # the same reading of beat's health the dashboard shows


def _read_database() -> DatabaseReading:
    now = timezone.now()
    since = now - RUNS_WINDOW
    # A range over the date_done index, grouped: bounded by the window, never the whole table.
    runs = (TaskResult.objects.filter(date_done__gte=since).order_by()
            .values_list("task_name", "status").annotate(n=Count("id")))
    return DatabaseReading(
        taken_at=now,
        runs=tuple(sorted((name or "", status or "", n) for name, status, n in runs)),
        retries=RunRetry.objects.filter(requested_at__gte=since).count(),
    )


def metrics_reading() -> MetricsReading:
    """The cluster reading and beat's health every page shares (the dashboard's, not copies of
    them kept longer), and a shared database reading of runs and retries."""
    return MetricsReading(
        cluster=cluster_reading(),
        database=cache.shared_value(DB_CACHE_KEY, DB_READING_TTL, _read_database),
        beat=beat_health_shared(),  # published by beat: thousands of schedules cost seconds
    )
