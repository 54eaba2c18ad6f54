"""Schedule list with 10,000 periodic tasks: the console's list vs django-celery-beat's stock changelist."""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import types
import uuid
from datetime import date, timedelta

from harness import bench_stack

TASKS = ("demo.tasks.generate_report", "demo.tasks.flaky_call", "demo.tasks.send_email")
ZONES = ("UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--schedules", type=int, default=10_000)
    parser.add_argument("--runs-per-schedule", type=int, default=10,
                        help="results rows per schedule (the history the list reads)")
    parser.add_argument("--requests", type=int, default=20, help="timed requests per page")
    args = parser.parse_args()
    # The bench talks to Django in-process through the test client ("testserver").
    os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "testserver")
    with bench_stack(migrate=True):
        return run(args)


def _seed(schedules: int, runs_per_schedule: int) -> None:
    """Periodic tasks on shared crontab/interval rows, each with its recent results."""
    from django.utils import timezone
    from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask
    from django_celery_results.models import TaskResult

    crontabs = [CrontabSchedule.objects.create(minute=str(m), hour=str(h), timezone=zone)
                for m in (0, 15, 30, 45) for h in range(0, 24, 4) for zone in ZONES]
    intervals = [IntervalSchedule.objects.create(every=n, period=p)
                 for n in (10, 30, 90) for p in ("seconds", "minutes", "hours")]
    now = timezone.now()
    for start in range(0, schedules, 2000):
        rows = []
        for i in range(start, min(start + 2000, schedules)):
            crontab = crontabs[i % len(crontabs)] if i % 3 else None
            rows.append(PeriodicTask(
                name=f"schedule {i:05d}", task=TASKS[i % len(TASKS)], crontab=crontab,
                interval=None if crontab else intervals[i % len(intervals)],
                kwargs='{"customer_id": %d}' % i, queue=("reports", "default", None)[i % 3],
                priority=(None, 3, 9)[i % 3], enabled=bool(i % 7)))
        PeriodicTask.objects.bulk_create(rows)
        results = [
            TaskResult(task_id=str(uuid.uuid4()), task_name=task.task, periodic_task_name=task.name,
                       status=("SUCCESS", "SUCCESS", "FAILURE", "SUCCESS")[(n + i) % 4],
                       date_done=now - timedelta(minutes=n * 30 + i % 30))
            for i, task in enumerate(rows) for n in range(runs_per_schedule)
        ]
        TaskResult.objects.bulk_create(results, batch_size=5000)


def _stock_urls():
    """A URLconf with the console's admin at /admin/ and the stock changelist at /stock/."""
    from django.conf import settings
    from django.contrib import admin
    from django.urls import clear_url_caches, path
    from django_celery_beat.admin import PeriodicTaskAdmin as StockPeriodicTaskAdmin
    from django_celery_beat.models import PeriodicTask

    stock = admin.AdminSite(name="stock")
    stock.register(PeriodicTask, StockPeriodicTaskAdmin)
    module = types.ModuleType("bench_schedule_urls")
    module.urlpatterns = [path("admin/", admin.site.urls), path("stock/", stock.urls)]
    sys.modules[module.__name__] = module
    settings.ROOT_URLCONF = module.__name__
    clear_url_caches()


def _timed(client, url: str, requests: int) -> tuple[list[float], int, int]:
    """Latencies (ms) of `requests` GETs after a warm-up, the queries one GET makes, its size."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for _ in range(2):
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    queries = len(captured)  # now: the log is cleared at the next request
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        client.get(url)
        times.append((time.perf_counter() - started) * 1000)
    return times, queries, len(response.content)


def _p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1] if len(values) >= 2 else values[0]


def _beat_health_time() -> None:
    """The beat health banner above the list reads every enabled schedule: how long that takes."""
    try:
        from taskops.selectors.beat_health import beat_health
    except ImportError:
        return
    times = []
    for _ in range(3):
        started = time.perf_counter()
        beat_health()
        times.append((time.perf_counter() - started) * 1000)
    print(f"\nbeat_health() alone (recomputed once per TASKOPS_LIVE_TTL by the request that finds "
          f"it stale): {statistics.median(times):.0f} ms")


def run(args) -> int:
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core import signals
    from django.db import close_old_connections, connection
    from django.test import Client

    # No collectstatic here: serve static names as they are.
    settings.STORAGES = {**settings.STORAGES, "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}
    started = time.perf_counter()
    _seed(args.schedules, args.runs_per_schedule)
    setup = time.perf_counter() - started
    _stock_urls()
    # As Django's test runner does: keep one connection, so its queries can be counted.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    client = Client()
    client.force_login(get_user_model().objects.create_superuser("bench", password="x"))

    last = (args.schedules - 1) // 100  # the last page's index (100 rows a page)
    pages = [
        ("first page (100 rows)", ""),
        (f"page {min(50, last + 1)}", f"?p={min(49, last)}"),
        ("filter enabled + search", "?enabled__exact=1&q=schedule+01"),
    ]
    print(f"Schedule list, {args.schedules:,} periodic tasks, {args.runs_per_schedule} results each "
          f"({connection.vendor}); {date.today()}, {os.cpu_count()} cores; setup {setup:.1f} s; "
          f"{args.requests} requests per row", file=sys.stderr)
    print("| page | list | p50 ms | p95 ms | queries | KB | p50 vs stock |")
    print("|---|---|---:|---:|---:|---:|---:|")
    # The beat health banner above the console's list (another reading, shared by all viewers
    # and recomputed once per TASKOPS_LIVE_TTL) is timed on its own below; here it stays cached,
    # so the rows compare the two lists.
    settings.TASKOPS_LIVE_TTL = 3600
    for label, query in pages:
        stock, stock_queries, stock_size = _timed(
            client, f"/stock/django_celery_beat/periodictask/{query}", args.requests)
        console, queries, size = _timed(
            client, f"/admin/django_celery_beat/periodictask/{query}", args.requests)
        stock_p50, console_p50 = statistics.median(stock), statistics.median(console)
        print(f"| {label} | stock django-celery-beat | {stock_p50:.1f} | {_p95(stock):.1f} | "
              f"{stock_queries} | {stock_size / 1024:.0f} | 1.0x |")
        print(f"| {label} | console | {console_p50:.1f} | {_p95(console):.1f} | {queries} | "
              f"{size / 1024:.0f} | {console_p50 / stock_p50:.2f}x |")
    _beat_health_time()
    return 0


if __name__ == "__main__":
    sys.exit(main())
