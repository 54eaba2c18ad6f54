"""The task catalog and its run form against a real broker and real workers."""

from __future__ import annotations

import json
import re

import pytest
from django.urls import resolve, reverse
from django_celery_results.models import TaskResult

from taskops import control
from taskops.capture import CapturedCall, call_from_meta
from taskops.models import AuditEntry
from taskops.selectors import catalog as catalog_selectors
from tests.support.poll import poll_until
from tests.support.tasks import unique, waiting

pytestmark = pytest.mark.django_db(transaction=True)

REPORT = "demo.tasks.generate_report"
ELSEWHERE = "billing.tasks.only_on_workers"  # a task no module of this process defines


def _catalog_row(text: str, name: str) -> str:
    found = re.search(rf'<tr data-task="{re.escape(name)}">(.*?)</tr>', text, re.S)
    assert found, f"{name} is not in the catalog"
    return found.group(1)


def _run_url(name: str) -> str:
    return reverse("admin:taskops_task_run", args=[name])


def _nothing_sent(queue: str) -> None:
    assert waiting(queue) == 0
    assert not AuditEntry.objects.filter(action="task.trigger").exists()
    assert not TaskResult.objects.exists()


def test_the_catalog_lists_tasks_with_their_docs_queues_workers_and_rate_limits(role_client, start_worker):
    worker = start_worker()
    assert control.rate_limit("demo.tasks.flaky_call", "7/m", destination=[worker.name]).ok
    client = role_client("Support")

    text = client.get(reverse("admin:taskops_task_changelist")).content.decode()

    report = _catalog_row(text, REPORT)
    assert "Write the CSV of `report` for `day`" in report
    assert re.search(r"data-task-queue>.*>reports</a>", report)
    assert "here</span>" in report and worker.name in report
    email = _catalog_row(text, "demo.tasks.send_email")
    assert re.search(r"data-task-queue>.*>emails</a>", email) and worker.name in email
    flaky = _catalog_row(text, "demo.tasks.flaky_call")
    assert "7/m" in flaky and f"on {worker.name}" in flaky
    assert "celery.backend_cleanup" not in text  # Celery's builtins are not offered


def test_with_the_broker_down_the_catalog_shows_the_local_registry_and_a_banner(role_client,
                                                                               isolated_broker):
    client = role_client("Support")
    isolated_broker.stop()

    response = client.get(reverse("admin:taskops_task_changelist"))

    assert response.status_code == 200
    text = response.content.decode()
    assert "The broker is not answering" in text
    assert "here</span>" in _catalog_row(text, REPORT)


def test_support_triggers_a_report_that_runs_on_the_routed_queue_and_is_followed(role_client,
                                                                                start_worker):
    worker = start_worker("reports")  # consumes only the queue the task is routed to
    client = role_client("Support")
    report = unique("catalog")
    form = client.get(reverse("admin:taskops_task_detail", args=[REPORT])).content.decode()
    assert "(report: str, day: str | None = None, rows: int = 20)" in form
    assert 'name="queue" value="reports"' in form and 'name="arg_rows"' in form

    response = client.post(_run_url(REPORT), {
        "arg_report": json.dumps(report), "arg_day": "", "arg_rows": "3", "queue": "reports",
        "countdown": "1", "priority": "3", "reason": "monthly numbers again",
    })

    assert response.status_code == 302
    task_id = resolve(response["Location"]).kwargs["task_id"]
    assert response["Location"] == reverse("admin:taskops_taskrun_detail", args=[task_id])
    page = client.get(response["Location"]).content.decode()
    assert f"Sent {REPORT} to queue reports as {task_id}, in 1 s." in page
    assert 'id="taskops-run" data-live' in page  # the run page follows it until it ends
    poll_until(lambda: TaskResult.objects.filter(task_id=task_id, status="SUCCESS").exists(),
               timeout=30, message="the triggered report succeeds")
    run = TaskResult.objects.get(task_id=task_id)
    assert run.worker == worker.name and report in json.loads(run.result)
    call = call_from_meta(run.meta)
    assert isinstance(call, CapturedCall)
    assert (call.args, call.kwargs) == ([], {"report": report, "rows": 3})
    assert (call.routing_key, call.priority) == ("reports", 3)
    entry = AuditEntry.objects.get(action="task.trigger")
    assert (entry.target, entry.outcome, entry.reason) == (REPORT, "ok", "monthly numbers again")
    assert entry.detail == {"task_id": task_id}
    assert entry.params["kwargs"] == {"report": report, "rows": 3}
    finished = client.get(response["Location"]).content.decode()
    assert "data-live" not in finished and 'data-run-state>SUCCESS<' in finished


@pytest.mark.parametrize("posted, error", [
    ({"arg_rows": "3"}, "This field is required."),
    ({"arg_report": '"r"', "arg_pages": "3"}, f"{REPORT} takes no argument pages"),
    ({"arg_report": "monthly"}, "Not valid JSON"),
    ({"arg_report": '"r"', "arg_rows": "[1,"}, "Not valid JSON"),
    ({"arg_report": '"r"', "countdown": "5", "eta": "2030-01-01T10:00"},
     "Give a countdown or an ETA, not both."),
    ({"arg_report": '"r"', "time_limit": "5", "soft_time_limit": "5"},
     "The soft time limit must be below the hard one."),
    ({"arg_report": '"r"', "countdown": "1e300"}, "Ensure this value is less than or equal to"),
    ({"arg_report": "[" * 100_000}, "Not valid JSON"),
    ({"arg_report": '"\x00"'}, "Null characters are not allowed."),
    ({"arg_report": '"r"', "queue": "no spaces; please"}, "may hold only letters a-z, digits"),
    ({"arg_report": '"r"', "queue": "reports/sub"}, "may hold only letters a-z, digits"),
])
def test_input_that_does_not_fit_shows_the_form_again_and_sends_nothing(posted, error, role_client,
                                                                        isolated_broker):
    client = role_client("Support")

    response = client.post(_run_url(REPORT), {"queue": "reports", **posted})

    assert response.status_code == 200
    text = response.content.decode()
    assert "Nothing was sent: correct the form below." in text
    assert error in text.replace("&#x27;", "'")
    _nothing_sent("reports")


def test_a_task_only_workers_know_gets_a_json_form_checked_as_json(role_client, isolated_broker,
                                                                   monkeypatch):
    # Only the workers' reply is made up here: no process of this suite can register a task
    # that this process cannot import.
    monkeypatch.setattr(catalog_selectors, "_read_registrations",
                        lambda: catalog_selectors.WorkerRegistrations(
                            by_worker={"far@away": {ELSEWHERE: {}}}, complete=True))
    client = role_client("Operations")
    queue = "emails"  # a configured queue: the console sends only to queues it knows
    listing = client.get(reverse("admin:taskops_task_changelist")).content.decode()
    assert "far@away" in _catalog_row(listing, ELSEWHERE)
    form = client.get(reverse("admin:taskops_task_detail", args=[ELSEWHERE])).content.decode()
    assert "cannot be imported by the console" in form and 'name="kwargs"' in form

    refused = client.post(_run_url(ELSEWHERE), {"args": "[1", "kwargs": "{}", "queue": queue})
    assert refused.status_code == 200 and "Not valid JSON" in refused.content.decode()
    sent = client.post(_run_url(ELSEWHERE), {"args": "[1]", "kwargs": '{"account": "a-1"}',
                                             "queue": queue})

    assert sent.status_code == 302
    assert waiting(queue) == 1
    entry = AuditEntry.objects.get(action="task.trigger")
    assert entry.params == {"args": [1], "kwargs": {"account": "a-1"}, "queue": queue,
                            "task_id": sent.url.rstrip("/").split("/")[-1]}


def test_an_unknown_task_is_not_found(role_client, isolated_broker):
    client = role_client("Support")

    assert client.get(reverse("admin:taskops_task_detail", args=["no.such.task"])).status_code == 404
    assert client.post(_run_url("no.such.task"), {"queue": "default"}).status_code == 404
    _nothing_sent("default")


def test_managers_may_read_the_catalog_but_not_send(role_client, isolated_broker):
    client = role_client("Managers")

    page = client.get(reverse("admin:taskops_task_detail", args=[REPORT]))
    response = client.post(_run_url(REPORT), {"arg_report": '"r"', "queue": "reports"})

    assert page.status_code == 200 and _run_url(REPORT) not in page.content.decode()
    assert response.status_code == 403
    _nothing_sent("reports")


def test_with_the_broker_down_sending_is_refused_with_a_message_and_an_audit_entry(role_client,
                                                                                  isolated_broker):
    client = role_client("Support")
    isolated_broker.stop()

    response = client.post(_run_url(REPORT), {"arg_report": '"r"', "queue": "reports"})

    assert response.status_code == 200
    # No live worker can confirm the task: refused (and recorded) before anything is sent.
    assert (f"The console cannot confirm that a live worker registers {REPORT} (the broker did "
            "not answer)") in response.content.decode()
    entry = AuditEntry.objects.get(action="task.trigger")
    assert entry.outcome == "refused"
    assert not TaskResult.objects.exists()
