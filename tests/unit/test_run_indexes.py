"""The run list's queries are served by the console's indexes: no sort and no scan of the whole table.

Each case loads the list as a user does and explains the page query it really sent, on the
database under test (SQLite, or PostgreSQL with its statistics up to date).
"""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django_celery_results.models import TaskResult
from kombu.utils.json import dumps

from taskops.capture import CALL_KEY, CAPTURE_VERSION

pytestmark = [pytest.mark.django_db, pytest.mark.db_engine]

TABLE = "django_celery_results_taskresult"
ROWS = 3000


@pytest.fixture
def many_runs():
    """Runs over several tasks, states, queues and schedules, finished a second apart."""
    now = timezone.now()
    TaskResult.objects.bulk_create(
        TaskResult(
            task_id=f"run-{i}", task_name=f"demo.tasks.t{i % 7}",
            status="FAILURE" if i % 20 == 0 else "SUCCESS", worker=f"celery@w{i % 3}",
            periodic_task_name="Nightly digest email" if i % 11 == 0 else None,
            meta=dumps({CALL_KEY: {"v": CAPTURE_VERSION, "task": f"demo.tasks.t{i % 7}", "args": [],
                                   "kwargs": {}, "routing_key": ("default", "reports", "emails")[i % 3]}})
            if i % 2 else None,
        )
        for i in range(ROWS)
    )
    with connection.cursor() as cursor:  # date_done is auto_now: spread it afterwards
        for i in range(0, ROWS, 500):
            TaskResult.objects.filter(task_id__in=[f"run-{n}" for n in range(i, i + 500)]).update(
                date_done=now - timedelta(seconds=i))
        cursor.execute(f"ANALYZE {TABLE}")  # as a table of millions of rows would have it
    return TaskResult.objects.order_by("-date_done", "-id")[1234]


def _page_query(client, params: dict) -> str:
    """The query that fetched the page's rows (the one ordered by date_done, over the results)."""
    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse("admin:taskops_taskrun_changelist"), params)
    assert response.status_code == 200
    pages = [q["sql"] for q in queries
             if TABLE in q["sql"] and "ORDER BY" in q["sql"] and "COUNT(" not in q["sql"].upper()]
    assert len(pages) == 1, pages
    return pages[0]


def _plan(sql: str) -> str:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # A few thousand rows sort in no time, so PostgreSQL may rightly prefer a sort here;
            # with sorts and table scans priced out it must show the index that serves the
            # order, which is the plan it picks on millions of rows (see docs/benchmarks.md).
            cursor.execute("SET LOCAL enable_sort = off")
            cursor.execute("SET LOCAL enable_seqscan = off")
            cursor.execute("EXPLAIN " + sql)
        else:
            cursor.execute("EXPLAIN QUERY PLAN " + sql)
        return "\n".join(str(row[-1]) for row in cursor.fetchall())


def _assert_served_by(plan: str, index: str) -> None:
    assert index in plan, plan
    if connection.vendor == "postgresql":
        assert "Sort" not in plan and "Seq Scan" not in plan, plan
    else:  # a SCAN in an index's order stops at the page's LIMIT; a SCAN of the table would not
        assert "TEMP B-TREE" not in plan, plan
        assert all("USING" in line for line in plan.splitlines() if "SCAN" in line), plan


@pytest.mark.parametrize(
    ("params", "index"),
    [
        ({}, "taskops_run_done"),
        ({"status__exact": "FAILURE"}, "taskops_run_status_done"),
        ({"task_name": "demo.tasks.t3"}, "taskops_run_task_done"),
        ({"periodic_task_name": "Nightly digest email"}, "taskops_run_periodic_done"),
        ({"queue": "reports"}, "taskops_run_queue_done"),
        ({"o": "5"}, "taskops_run_done"),  # oldest first: the same index, read backwards
    ],
)
def test_each_default_view_is_an_index_range_scan(admin_client, many_runs, params, index):
    _assert_served_by(_plan(_page_query(admin_client, params)), index)


@pytest.mark.parametrize(
    ("params", "index"),
    [({}, "taskops_run_done"), ({"status__exact": "FAILURE"}, "taskops_run_status_done"),
     ({"queue": "emails"}, "taskops_run_queue_done")],
)
@pytest.mark.parametrize("direction", ["before", "after"])
def test_a_deep_page_by_key_starts_in_the_index_where_the_key_is(
    admin_client, many_runs, params, index, direction
):
    key = f"{many_runs.date_done.isoformat()},{many_runs.pk}"

    sql = _page_query(admin_client, {**params, direction: key})

    _assert_served_by(_plan(sql), index)
    assert "OFFSET" not in sql.upper()
