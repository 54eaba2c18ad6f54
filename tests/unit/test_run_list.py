"""The run list on a large table: counts are capped, nothing sorts or counts the whole table; cleanup."""

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django_celery_results.models import TaskResult

from taskops.models import RunRetry
from taskops.paginators import CappedCountPaginator

pytestmark = pytest.mark.django_db


@pytest.fixture
def runs():
    now = timezone.now()
    TaskResult.objects.bulk_create(
        TaskResult(task_id=f"run-{i}", task_name="demo.tasks.flaky_call",
                   status="FAILURE" if i % 3 == 0 else "SUCCESS", date_done=now - timedelta(days=i),
                   task_args=f"\"('customer-{i}',)\"")
        for i in range(60)
    )
    for i in range(60):  # date_done is auto_now: set it after the insert
        TaskResult.objects.filter(task_id=f"run-{i}").update(date_done=now - timedelta(days=i))


def test_the_list_counts_at_most_the_cap_and_says_so(admin_client, runs, monkeypatch):
    monkeypatch.setattr(CappedCountPaginator, "cap", 25)

    with CaptureQueriesContext(connection) as queries:
        page = admin_client.get(reverse("admin:taskops_taskrun_changelist")).content.decode()

    assert "more than 25 task runs" in page
    counts = [q["sql"] for q in queries if "COUNT(" in q["sql"].upper()]
    assert counts and all("LIMIT" in sql.upper() for sql in counts), counts
    assert all('"traceback"' not in q["sql"] for q in queries if "taskresult" in q["sql"])


def test_a_filtered_list_under_the_cap_shows_its_exact_count(admin_client, runs):
    page = admin_client.get(reverse("admin:taskops_taskrun_changelist") + "?status__exact=FAILURE")

    assert "20 task runs" in page.content.decode()


def test_search_finds_a_value_inside_the_arguments_or_an_exact_id(admin_client, runs):
    url = reverse("admin:taskops_taskrun_changelist")

    by_value = admin_client.get(url, {"q": "customer-42"}).content.decode()
    by_id = admin_client.get(url, {"q": "run-7"}).content.decode()

    assert "run-42" in by_value and "run-41" not in by_value
    assert "run-7" in by_id and "run-70" not in by_id


def test_cleanup_deletes_old_runs_in_batches_and_their_retry_links(runs):
    RunRetry.objects.create(original_task_id="run-59", retry_task_id="retry-59", task_name="t")
    TaskResult.objects.create(task_id="still-running", status="STARTED")
    TaskResult.objects.filter(task_id="still-running").update(
        date_done=timezone.now() - timedelta(days=90))

    call_command("taskops_cleanup", "--days", "30", "--batch", "7")

    assert TaskResult.objects.filter(task_id__startswith="run-").count() == 30  # days 0..29 stay
    assert TaskResult.objects.filter(task_id="still-running").exists()
    assert not RunRetry.objects.filter(original_task_id="run-59").exists()


def test_a_run_is_never_shown_as_its_own_parent():
    from kombu.utils.json import dumps

    from taskops.capture import CALL_KEY, CAPTURE_VERSION
    from taskops.selectors import run_detail

    def capture(parent):
        return dumps({CALL_KEY: {"v": CAPTURE_VERSION, "task": "t", "args": [], "kwargs": {},
                                 "parent_id": parent}})

    # Celery's own retry re-sends a run under its id with parent_id set to that same id.
    TaskResult.objects.create(task_id="self-retried", status="FAILURE", meta=capture("self-retried"))
    TaskResult.objects.create(task_id="child", status="SUCCESS", meta=capture("the-parent"))

    assert run_detail("self-retried").parent_id is None
    assert run_detail("child").parent_id == "the-parent"
