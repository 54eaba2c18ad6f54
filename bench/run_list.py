"""The run list on 1,000,000 runs in PostgreSQL: the console's admin vs the stock django-celery-results admin.

Loads the runs once (COPY; kept for the next run when the count matches), applies the console's
migrations (its indexes), then times the same views through Django's test client: the list,
failures, one task, a page 250,000 runs deep and a search by task id. The stock
`TaskResultAdmin` is registered on an admin site of its own, on the same database.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
import types
import uuid
from datetime import date, datetime, timedelta, timezone

from harness import bench_stack, measure, percentile, postgres_database

DATABASE = "taskops_bench"
TABLE = "django_celery_results_taskresult"
# (task name, weight, queue): a few busy tasks and a long tail, as in most projects.
TASKS = [
    ("demo.tasks.sync_invoices", 30, "default"), ("demo.tasks.flaky_call", 20, "default"),
    ("demo.tasks.send_email", 15, "emails"), ("demo.tasks.generate_report", 8, "reports"),
    ("billing.tasks.charge_card", 8, "billing"), ("billing.tasks.refund", 2, "billing"),
    ("crm.tasks.sync_contact", 6, "default"), ("crm.tasks.merge_duplicates", 1, "default"),
    ("search.tasks.reindex_document", 6, "default"), ("media.tasks.make_thumbnail", 3, "default"),
    ("ops.tasks.cleanup_tmp", 0.5, "default"), ("ops.tasks.rotate_keys", 0.5, "default"),
]
WORKERS = [f"celery@worker-{n}" for n in range(1, 7)]
SCHEDULES = {"demo.tasks.sync_invoices": "Hourly invoice sync",
             "demo.tasks.generate_report": "Nightly digest report", "ops.tasks.cleanup_tmp": "Cleanup"}
ONE_TASK = "demo.tasks.generate_report"  # 8 % of the runs
DEPTH = 250_000  # the deep page: 250,000 runs from the newest (page 5,001 at 50 a page)
COLUMNS = ("task_id", "status", "content_type", "content_encoding", "result", "date_done", "traceback",
           "meta", "task_args", "task_kwargs", "task_name", "worker", "date_created",
           "periodic_task_name", "date_started")


def traceback_text(rng: random.Random, task: str) -> str:
    """A ~2 KB Python traceback, as a failing task leaves one."""
    frames = "".join(
        f'  File "/srv/app/{task.split(".")[0]}/{mod}.py", line {rng.randint(10, 900)}, in {fn}\n'
        f"    {code}\n"
        for mod, fn, code in [
            ("tasks", task.rsplit(".", 1)[-1], "return client.call(endpoint, payload, timeout=30)"),
            ("client", "call", "response = self.session.post(self.base + endpoint, json=payload)"),
            ("sessions", "post", "return self.request('POST', url, data=data, json=json, **kwargs)"),
            ("sessions", "request", "resp = self.send(prep, **send_kwargs)"),
            ("adapters", "send", "raise ConnectionError(e, request=request)"),
        ] * 3
    )
    return ("Traceback (most recent call last):\n" + frames
            + f"requests.exceptions.ConnectionError: HTTPSConnectionPool(host='partner-{rng.randint(1, 9)}"
            f".example.com', port=443): Max retries exceeded with url: /v2/accounts/{rng.randint(1, 10**6)}"
            " (Caused by NewConnectionError('<urllib3.connection.HTTPSConnection object>: Failed to "
            "establish a new connection: [Errno 111] Connection refused'))\n")


def rows(count: int, now: datetime):
    """`count` runs over the 30 days before `now`, oldest first; 5 % failures."""
    from kombu.utils.json import dumps

    rng = random.Random(4)
    names, weights = [t[0] for t in TASKS], [t[1] for t in TASKS]
    queues = {t[0]: t[2] for t in TASKS}
    span = timedelta(days=30)
    for i in range(count):
        task = rng.choices(names, weights)[0]
        done = now - span + span * (i / count) + timedelta(microseconds=rng.randint(0, 999))
        started = done - timedelta(seconds=rng.expovariate(1 / 2))
        failed = rng.random() < 0.05
        customer = rng.randint(1, 200_000)
        args, kwargs = [f"customer-{customer}", rng.randint(1, 500)], {"attempt": rng.randint(1, 3)}
        captured = rng.random() < 0.7  # the rest ran before the console was installed
        meta = dumps({"children": [], "taskops_call": {
            "v": 1, "task": task, "args": args, "kwargs": kwargs, "exchange": "",
            "routing_key": queues[task], "priority": 0, "time_limit": None, "soft_time_limit": None,
            "headers": {}, "root_id": None, "parent_id": None}} if captured else {"children": []})
        yield (
            str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "FAILURE" if failed else "SUCCESS", "application/json", "utf-8",
            ('{"exc_type": "ConnectionError", "exc_message": ["partner unreachable"], '
             '"exc_module": "requests.exceptions"}') if failed else f'{{"processed": {rng.randint(0, 99)}}}',
            done, traceback_text(rng, task) if failed else None, meta,
            dumps(repr(tuple(args))), dumps(repr(kwargs)), task, rng.choice(WORKERS), started,
            SCHEDULES.get(task) if rng.random() < 0.5 else None, started,
        )


def load(count: int) -> float:
    """Fill the results table with `count` runs unless it holds exactly that many; seconds taken."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {TABLE}")
        if cursor.fetchone()[0] == count:
            return 0.0
        print(f"Loading {count:,} runs ...", file=sys.stderr)
        started = time.perf_counter()
        console_indexes("drop")  # as when the console is installed on a full table
        cursor.execute(f"TRUNCATE {TABLE}")
        raw = cursor.cursor  # psycopg's own cursor, for COPY
        with raw.copy(f"COPY {TABLE} ({', '.join(COLUMNS)}) FROM STDIN") as copy:
            for row in rows(count, datetime.now(timezone.utc)):
                copy.write_row(row)
        return time.perf_counter() - started


def console_indexes(step: str) -> None:
    """Run the `create` or `drop` code of the console's index migrations (0004, 0008)."""
    from importlib import import_module

    from django.db import connection

    with connection.schema_editor(atomic=False) as editor:
        for name in ("0004_run_list_indexes", "0008_run_queue_index"):
            getattr(import_module(f"taskops.migrations.{name}"), step)(None, editor)


def stock_urls() -> types.ModuleType:
    """The console's URLs plus the stock TaskResultAdmin on an admin site of its own at /stock/."""
    from django.contrib.admin import AdminSite
    from django.urls import path
    from django_celery_results.admin import TaskResultAdmin
    from django_celery_results.models import TaskResult

    import console.urls

    site = AdminSite(name="stock")
    site.register(TaskResult, TaskResultAdmin)
    module = types.ModuleType("bench_run_list_urls")
    module.urlpatterns = [path("stock/", site.urls), *console.urls.urlpatterns]
    return module


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=int(os.environ.get("TASKOPS_BENCH_ROWS", 1_000_000)))
    parser.add_argument("--requests", type=int, default=20, help="timed requests per view")
    parser.add_argument("--database", default=DATABASE, help="database on the PostgreSQL server")
    args = parser.parse_args()
    url = postgres_database(args.database)
    if url is None:
        print("Run list bench skipped: it needs PostgreSQL (TASKOPS_BENCH_POSTGRES_URL, default "
              "postgres://postgres@127.0.0.1:5432/).")
        return 0
    os.environ.update(DATABASE_URL=url, DJANGO_DEBUG="0",
                      DJANGO_ALLOWED_HOSTS="testserver,127.0.0.1,localhost")
    with bench_stack():
        return run(args)


def run(args) -> int:
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.urls import clear_url_caches

    call_command("migrate", verbosity=0)
    load_seconds, index_seconds = load(args.rows), 0.0
    if load_seconds:  # the console's indexes, built by their migrations' code on the full table
        started = time.perf_counter()
        console_indexes("create")
        index_seconds = time.perf_counter() - started
    depth = min(DEPTH, args.rows // 4)
    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM ANALYZE {TABLE}")
        cursor.execute(f"SELECT date_done, id FROM {TABLE} ORDER BY date_done DESC, id DESC "
                       f"OFFSET {depth} LIMIT 1")
        deep_done, deep_id = cursor.fetchone()
        cursor.execute(f"SELECT task_id FROM {TABLE} ORDER BY id OFFSET {args.rows // 3} LIMIT 1")
        some_id = cursor.fetchone()[0]
        cursor.execute("SELECT pg_size_pretty(pg_total_relation_size(%s))", [TABLE])
        size = cursor.fetchone()[0]

    settings.ROOT_URLCONF = stock_urls()
    clear_url_caches()
    # Static URLs without collectstatic's manifest (both admins link the same files).
    settings.STORAGES = {**settings.STORAGES, "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}
    user, _ = get_user_model().objects.get_or_create(username="bench", defaults={"is_staff": True,
                                                                               "is_superuser": True})
    client = Client()
    client.force_login(user)
    console, stock = "/admin/taskops/taskrun/", "/stock/django_celery_results/taskresult/"
    views = [  # (label, console query, stock query, text both pages must show)
        ("list, newest first", {}, {}, "SUCCESS"),
        ("failures", {"status__exact": "FAILURE"}, {"status__exact": "FAILURE"}, "FAILURE"),
        ("one task", {"task_name": ONE_TASK}, {"task_name": ONE_TASK}, ONE_TASK),
        (f"deep page ({depth:,} runs in)", {"before": f"{deep_done.isoformat()},{deep_id}"},
         {"p": str(depth // 100 + 1)}, ""),  # stock: 100 runs a page
        ("search by task id", {"q": some_id}, {"q": some_id}, some_id),
    ]
    console_only = [("one queue (console only)", {"queue": "billing"}, "billing")]

    def fetch(path: str, query: dict, expect: str):
        def call() -> None:
            response = client.get(path, query)
            assert response.status_code == 200, (path, query, response.status_code)
            assert expect in response.content.decode(), (path, query, expect)
        return call

    results = []
    for label, ours, theirs, expect in views:
        print(f"  timing {label} ...", file=sys.stderr)
        mine = measure(fetch(console, ours, expect), args.requests, warmup=2)
        other = measure(fetch(stock, theirs, expect), args.requests, warmup=2)
        results.append((label, mine, other))
    extra = [(label, measure(fetch(console, ours, expect), args.requests, warmup=2))
             for label, ours, expect in console_only]

    print(f"Run list, {args.rows:,} runs in PostgreSQL ({size}; 5 % failures with ~2 KB tracebacks); "
          f"{date.today()}, {os.cpu_count()} cores; {args.requests} requests per view after 2 warm-up")
    if load_seconds:
        print(f"loaded in {load_seconds:.0f} s (COPY, without the console's indexes); "
              f"then its indexes (migrations 0004, 0008) built in {index_seconds:.0f} s")
    print("console: TaskOps run list (50 a page); stock: django-celery-results TaskResultAdmin (100 a page)")
    print(f"{'view':<32}{'console p50':>12}{'p95':>8}{'stock p50':>12}{'p95':>9}{'p95 stock/console':>19}")
    for label, mine, other in results:
        print(f"{label:<32}{statistics.median(mine):>10.0f}ms{percentile(mine, 0.95):>6.0f}ms"
              f"{statistics.median(other):>10.0f}ms{percentile(other, 0.95):>7.0f}ms"
              f"{percentile(other, 0.95) / percentile(mine, 0.95):>18.1f}x")
    for label, mine in extra:
        print(f"{label:<32}{statistics.median(mine):>10.0f}ms{percentile(mine, 0.95):>6.0f}ms"
              f"{'—':>12}{'—':>9}{'—':>19}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
