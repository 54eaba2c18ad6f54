"""Stored data is hostile: HTML in a run's names, arguments, result or traceback is escaped on every page that shows runs.

One hostile scene (a failed run, a report run, a schedule, a worker running a task and a
waiting message, every text field carrying its own tag) is rendered through each page that
shows runs or tasks. No page may contain a hostile tag as markup, and each shows the hostile
values it is expected to show, escaped, so that a page that stopped showing them (and so could
not fail) is noticed too. The cluster is the in-memory one (tests/support/fakes.py).
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask
from django_celery_results.models import TaskResult

from taskops.capture import CapturedCall
from taskops.publish import Send
from tests.support.tasks import captured_meta

pytestmark = pytest.mark.django_db

WORKER = "busy@host"
FAILED_RUN = "hostile-failed-run"
STORED_RUN = "hostile-run-without-capture"
REPORT_RUN = "hostile-report-run"


def tag(field: str) -> str:
    """The hostile value of one field: markup if a page forgot to escape it."""
    return f"<i>hostile-{field}</i>"


def escaped(field: str) -> str:
    return f"&lt;i&gt;hostile-{field}&lt;/i&gt;"


RAW = "<i>hostile-"


@pytest.fixture
def hostile(fake_cluster):
    """Hostile values in every text a run, a schedule, a worker's task or a waiting message has."""
    every = IntervalSchedule.objects.create(every=5, period="minutes")
    schedule = PeriodicTask.objects.create(name=f"nightly {tag('schedule')}",
                                           task="demo.tasks.generate_report", interval=every,
                                           enabled=False)
    now = timezone.now()
    meta = captured_meta("demo.tasks.flaky_call", args=[tag("captured")],
                         routing_key=f"q{tag('queue')}")
    TaskResult.objects.create(
        task_id=FAILED_RUN, task_name=f"demo.tasks.{tag('task')}", status="FAILURE",
        worker=f"{tag('worker')}@host", periodic_task_name=schedule.name,
        result=json.dumps({"exc_type": "ValueError", "exc_message": [tag("result")]}),
        traceback=f"Traceback (most recent call last):\nValueError: {tag('traceback')}",
        content_type="application/json", meta=meta, date_created=now - timedelta(seconds=3))
    TaskResult.objects.create(  # no captured call: its page shows the stored argument reprs
        task_id=STORED_RUN, task_name="demo.tasks.flaky_call", status="FAILURE",
        task_args=json.dumps(f"('{tag('args')}',)"), task_kwargs=json.dumps(f"{{'x': '{tag('kwargs')}'}}"),
        content_type="application/json", date_created=now - timedelta(seconds=4))
    TaskResult.objects.create(
        task_id=REPORT_RUN, task_name="demo.tasks.generate_report", status="SUCCESS",
        worker=f"{tag('report-worker')}@host", periodic_task_name=schedule.name,
        task_args=json.dumps(f"('{tag('report-args')}',)"), task_kwargs=json.dumps("{}"),
        result=json.dumps(f"/reports/{tag('report-output')}.csv"), content_type="application/json",
        date_created=now - timedelta(seconds=2))
    fake_cluster.worker_add(WORKER, "default")
    fake_cluster.task_running(WORKER, "running-1", f"demo.tasks.{tag('active-task')}",
                              [tag("active-args")], {"k": tag("active-kwargs")}, "default")
    fake_cluster.publish.calls_publish([Send("waiting-1", CapturedCall(
        task="demo.tasks.generate_report", args=[tag("waiting-args")],
        kwargs={"k": tag("waiting-kwargs")}, routing_key="default"))])
    return schedule


# Each page that shows runs or tasks -> the hostile values it shows (escaped).
PAGES = {
    "run list": (lambda s: reverse("admin:taskops_taskrun_changelist"),
                 {"task", "worker", "queue", "schedule"}),
    "run page": (lambda s: reverse("admin:taskops_taskrun_detail", args=[FAILED_RUN]),
                 {"task", "worker", "queue", "result", "traceback", "captured"}),
    "run page, arguments as stored": (
        lambda s: reverse("admin:taskops_taskrun_detail", args=[STORED_RUN]), {"args", "kwargs"}),
    "dashboard failures": (lambda s: reverse("admin:index"), {"task"}),
    "schedule list and its history strip": (
        lambda s: reverse("admin:django_celery_beat_periodictask_changelist"), {"schedule"}),
    "schedule history": (lambda s: reverse("admin:django_celery_beat_periodictask_history",
                                           args=[s.pk]), {"schedule"}),
    "report index": (lambda s: reverse("admin:taskops_report_changelist"), set()),
    "report page": (lambda s: reverse("admin:taskops_report_detail", args=["daily-reports"]),
                    {"schedule"}),
    "worker page": (lambda s: reverse("admin:taskops_worker_detail", args=[WORKER]),
                    {"active-task", "active-args", "active-kwargs"}),
    "queue page": (lambda s: reverse("admin:taskops_queue_detail", args=["default"]),
                   {"waiting-args", "waiting-kwargs"}),
}


@pytest.mark.parametrize("page", PAGES)
def test_html_in_stored_runs_is_escaped_on_every_page_that_shows_runs(page, hostile, admin_client):
    url, shown = PAGES[page]

    response = admin_client.get(url(hostile))

    assert response.status_code == 200, page
    html = response.content.decode()
    assert RAW not in html, html[max(0, html.index(RAW) - 300):html.index(RAW) + 100]
    assert {field for field in shown if escaped(field) not in html} == set(), page
