"""Bulk retry throughput: a plain send_task loop vs the console's batched publish vs a whole retry job."""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from datetime import date

from harness import bench_stack

TASK = "demo.tasks.flaky_call"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--loop-runs", type=int, default=20_000,
                        help="messages for the plain loop (it is slow; its rate is what counts)")
    args = parser.parse_args()

    with bench_stack(migrate=True) as server:
        return run(args, server)


def run(args, server) -> int:
    import redis
    from django.db import connection
    from django_celery_results.models import TaskResult
    from kombu.utils.json import dumps

    from taskops.capture import CALL_KEY, CAPTURE_VERSION, call_from_meta
    from taskops.conf import celery_app
    from taskops.models import RetryJob, RetryJobItem
    from taskops.services.runs import calls_publish, retry_job_process

    app = celery_app()
    client = redis.Redis.from_url(server.url)
    queue = "bench-retry"

    def meta(i: int) -> str:
        return dumps({"children": [], CALL_KEY: {
            "v": CAPTURE_VERSION, "task": TASK, "args": [f"endpoint-{i}"],
            "kwargs": {"fail_rate": 0.0, "customer_id": i}, "exchange": queue, "routing_key": queue,
            "priority": 0, "time_limit": None, "soft_time_limit": None, "headers": {}}})

    started = time.perf_counter()
    ids = [f"bench-{uuid.uuid4()}" for _ in range(args.runs)]
    for start in range(0, len(ids), 5000):
        TaskResult.objects.bulk_create(
            TaskResult(task_id=task_id, task_name=TASK, status="FAILURE", meta=meta(start + n))
            for n, task_id in enumerate(ids[start:start + 5000]))
    setup = time.perf_counter() - started

    def depth() -> int:
        return int(client.llen(queue))

    # 1. What code without the console does: one send_task per run through the app's pool.
    calls = [call_from_meta(meta(i)) for i in range(args.loop_runs)]
    started = time.perf_counter()
    for call in calls:
        app.send_task(call.task, args=call.args, kwargs=call.kwargs, queue=queue, priority=0)
    loop_rate = args.loop_runs / (time.perf_counter() - started)
    assert depth() == args.loop_runs
    client.delete(queue)

    # 2. The console's publish path alone: send_task inside a kombu publish batch.
    calls = [(str(uuid.uuid4()), call_from_meta(meta(i)), ids[i]) for i in range(args.runs)]
    started = time.perf_counter()
    calls_publish(calls)
    publish_rate = args.runs / (time.perf_counter() - started)
    assert depth() == args.runs
    client.delete(queue)

    # 3. A whole bulk retry job: read captures, claim, publish, confirm, link (database included).
    job = RetryJob.objects.create(description="bench", total=args.runs)
    for start in range(0, len(ids), 5000):
        RetryJobItem.objects.bulk_create(RetryJobItem(job=job, task_id=t) for t in ids[start:start + 5000])
    started = time.perf_counter()
    done = retry_job_process(job.pk, owner="bench")
    job_seconds = time.perf_counter() - started
    assert (done.state, done.sent) == ("done", args.runs), (done.state, done.sent, done.last_error)
    assert depth() == args.runs
    job_rate = args.runs / job_seconds

    print(f"Bulk retry, {args.runs} failed runs ({connection.vendor}); {date.today()}, "
          f"{os.cpu_count()} cores; setup {setup:.1f} s")
    print(f"{'method':<52}{'retries/s':>12}{'vs loop':>10}")
    for label, rate in [
        (f"plain send_task loop ({args.loop_runs} runs)", loop_rate),
        ("console publish (send_task in a kombu batch)", publish_rate),
        ("console bulk retry job (claim+publish+confirm)", job_rate),
    ]:
        print(f"{label:<52}{rate:>12,.0f}{rate / loop_rate:>9.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
