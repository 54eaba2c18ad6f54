"""Integration tests run against a real Redis and real worker processes."""

import pytest


def pytest_collection_modifyitems(items):
    for item in items:
        if "/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture
def existing_run_and_job():
    """One run, retry job, pending approval and schedule with the ids the URL table uses."""
    from datetime import timedelta

    from django.utils import timezone
    from django_celery_results.models import TaskResult

    from taskops.models import PendingAction, RetryJob
    from tests.integration.test_pages import APPROVAL, JOB, RUN, SCHEDULE

    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    PeriodicTask.objects.create(
        pk=SCHEDULE, name="permissions schedule", task="demo.tasks.generate_report", args='["x"]',
        interval=IntervalSchedule.objects.create(every=5, period="minutes"))
    TaskResult.objects.create(task_id=RUN, task_name="demo.tasks.flaky_call", status="FAILURE")
    RetryJob.objects.create(pk=JOB, description="permissions", state="done")
    PendingAction.objects.create(pk=APPROVAL, action="queue.purge", target="default",
                                 params={"queue": "default"}, reason="permissions",
                                 requested_by_name="someone",
                                 expires_at=timezone.now() + timedelta(hours=1))
