"""Bulk retry of 100,000 failed runs: a plain send_task loop vs the console's retry job.

The runs are in PostgreSQL when a server answers (else SQLite), each with the call captured as
the worker hook stores it. No worker consumes: what is measured is getting the retries into the
broker, with the console's bookkeeping (claim, publish, confirm, link) for its job.
"""

from __future__ import annotations

import argparse
import cProfile
import multiprocessing
import os
import pstats
import sys
import time
import uuid
from datetime import date

from harness import bench_stack, postgres_database

TASK = "demo.tasks.flaky_call"
QUEUE = "bench-retry"
DATABASE = "taskops_bench_retry"


def publish_chunk(sends) -> None:
    from taskops.publish import calls_publish

    calls_publish(sends, sent_events=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--loop-runs", type=int, default=None,
                        help="messages for the plain loop (default: --runs)")
    parser.add_argument("--sqlite", action="store_true", help="use SQLite even when PostgreSQL answers")
    parser.add_argument("--profile", action="store_true",
                        help="also profile the console's publish path (10,000 messages)")
    args = parser.parse_args()
    args.loop_runs = args.loop_runs or args.runs
    url = None if args.sqlite else postgres_database(DATABASE, fresh=True)
    if url:
        os.environ["DATABASE_URL"] = url
    with bench_stack(migrate=True) as server:
        return run(args, server)


def run(args, server) -> int:
    import redis
    from django.conf import settings
    from django.db import connection
    from django_celery_results.models import TaskResult
    from kombu.utils.json import dumps

    from taskops.capture import CALL_KEY, CAPTURE_VERSION, call_from_meta
    from taskops.conf import celery_app
    from taskops.models import RetryJob, RetryJobItem, RunRetry
    from taskops.publish import calls_publish
    from taskops.services.retries import retry_plans
    from taskops.services.retry_jobs import retry_job_process

    app = celery_app()
    client = redis.Redis.from_url(server.url)

    def call(i: int) -> dict:  # as the worker hook captures a call routed by queue
        return {"v": CAPTURE_VERSION, "task": TASK, "args": [f"endpoint-{i}"],
                "kwargs": {"fail_rate": 0.0, "customer_id": i}, "exchange": "", "routing_key": QUEUE,
                "priority": 0, "time_limit": None, "soft_time_limit": None, "headers": {}}

    started = time.perf_counter()
    ids = [str(uuid.uuid4()) for _ in range(args.runs)]
    for start in range(0, len(ids), 5000):
        TaskResult.objects.bulk_create(
            TaskResult(task_id=task_id, task_name=TASK, status="FAILURE",
                       meta=dumps({"children": [], CALL_KEY: call(start + n)}),
                       task_args=dumps(repr((f"endpoint-{start + n}",))),
                       task_kwargs=dumps(repr({"fail_rate": 0.0, "customer_id": start + n})))
            for n, task_id in enumerate(ids[start:start + 5000]))
    setup = time.perf_counter() - started

    def drained(expected: int) -> None:
        depth = int(client.llen(QUEUE))
        assert depth == expected, (depth, expected)
        client.delete(QUEUE)

    rates: list[tuple[str, float]] = []

    # 1. What code without the console does: read each failed run's arguments, send_task it.
    calls = [call_from_meta(meta) for meta in TaskResult.objects.filter(task_id__in=ids[:args.loop_runs])
             .values_list("meta", flat=True).iterator(chunk_size=5000)]
    started = time.perf_counter()
    for captured in calls:
        app.send_task(captured.task, args=captured.args, kwargs=captured.kwargs, queue=QUEUE,
                      priority=captured.priority)
    rates.append((f"plain send_task loop ({args.loop_runs:,} runs)",
                  args.loop_runs / (time.perf_counter() - started)))
    drained(args.loop_runs)

    # 2. The console's send path alone (no database): in one process, then in one per core.
    plans = retry_plans(ids)
    sends = [plans[t].send(str(uuid.uuid4())) for t in ids]
    started = time.perf_counter()
    calls_publish(sends, sent_events=False)
    rates.append(("console send path alone, 1 process", args.runs / (time.perf_counter() - started)))
    drained(args.runs)
    processes = min(4, os.cpu_count() or 1)
    if processes > 1:
        chunks = [sends[i:i + 1000] for i in range(0, len(sends), 1000)]
        connection.close()
        with multiprocessing.get_context("fork").Pool(processes) as pool:
            pool.map(int, range(processes))  # forked and ready
            started = time.perf_counter()
            pool.map(publish_chunk, chunks, chunksize=1)
            rates.append((f"console send path alone, {processes} processes",
                          args.runs / (time.perf_counter() - started)))
        drained(args.runs)
    if args.profile:
        profile = cProfile.Profile()
        profile.runcall(calls_publish, sends[:10_000], sent_events=False)
        client.delete(QUEUE)

    # 3. Whole bulk retry jobs: read captures, claim, publish, confirm and link every run.
    publishers = min(4, os.cpu_count() or 1)
    for count in sorted({1, publishers}):
        settings.TASKOPS_RETRY_PUBLISHERS = count
        # Each job retries runs not retried yet, as a real one does: the links of the previous
        # job go (a run retried already would be skipped, or read as such with include_retried).
        RunRetry.objects.all().delete()
        job = RetryJob.objects.create(description=f"bench, {count} publishers", total=args.runs)
        for start in range(0, len(ids), 5000):
            RetryJobItem.objects.bulk_create(RetryJobItem(job=job, task_id=t) for t in ids[start:start + 5000])
        started = time.perf_counter()
        done = retry_job_process(job.pk, owner="bench")
        seconds = time.perf_counter() - started
        assert (done.state, done.sent) == ("done", args.runs), (done.state, done.sent, done.last_error)
        drained(args.runs)
        label = "runner alone" if count == 1 else f"runner + {count} publisher processes"
        rates.append((f"console bulk retry job, {label}", args.runs / seconds))

    print(f"Bulk retry, {args.runs:,} failed runs ({connection.vendor}; chunks of "
          f"{int(getattr(settings, 'TASKOPS_RETRY_CHUNK_SIZE', 1000)):,}); {date.today()}, "
          f"{os.cpu_count()} cores; setup {setup:.1f} s")
    print(f"{'method':<58}{'retries/s':>12}{'vs loop':>10}")
    for label, rate in rates:
        print(f"{label:<58}{rate:>12,.0f}{rate / rates[0][1]:>9.1f}x")
    if args.profile:
        print("\nProfile of the console's send path, 10,000 messages (by own time):")
        pstats.Stats(profile, stream=sys.stdout).sort_stats("tottime").print_stats(15)
    return 0


if __name__ == "__main__":
    sys.exit(main())
