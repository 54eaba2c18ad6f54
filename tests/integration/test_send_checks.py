"""What the run form and retry with edits may send: values every database stores, tasks and queues the console may send to."""

from __future__ import annotations

import html

import pytest
from django.urls import reverse
from django_celery_results.models import TaskResult

from taskops.capture import CapturedCall
from taskops.models import AuditEntry, RunRetry
from taskops.services import ActionRefused, task_retry_edited, task_send
from tests.support.tasks import waiting

pytestmark = pytest.mark.django_db(transaction=True)

REPORT = "demo.tasks.generate_report"


def _run_url(name: str) -> str:
    return reverse("admin:taskops_task_run", args=[name])


@pytest.mark.parametrize("field, typed", [
    ("arg_report", '"monthly\\u0000"'),
    ("arg_report", '"\\ud800"'),
    ("arg_rows", "NaN"),
    ("arg_rows", "Infinity"),
    ("arg_rows", "1e999"),
    ("arg_day", '{"when": [-Infinity]}'),
])
def test_values_no_database_stores_are_a_form_error_that_keeps_the_text(field, typed, role_client,
                                                                        isolated_broker):
    client = role_client("Support")
    posted = {"arg_report": '"r"', "queue": "reports", field: typed}

    response = client.post(_run_url(REPORT), posted)

    assert response.status_code == 200
    text = response.content.decode()
    assert "Nothing was sent: correct the form below." in text and "Not accepted:" in text
    assert html.escape(typed) in text  # what was typed is shown again, to be corrected
    assert waiting("reports") == 0
    assert not AuditEntry.objects.exists() and not TaskResult.objects.exists()


@pytest.mark.parametrize("args, kwargs, problem", [
    (["r", float("nan")], {}, "args[1] is nan"),
    (["r"], {"rows": float("inf")}, "kwargs['rows'] is inf"),
    (["r\x00"], {}, "args[0] holds a NUL character"),
    (["r"], {"day": {"\ud800": 1}}, "a key of kwargs['day'] holds a lone surrogate"),
])
def test_the_send_service_refuses_them_too_and_the_refusal_is_recorded(args, kwargs, problem, actor,
                                                                       isolated_broker):
    with pytest.raises(ActionRefused, match=problem.replace("[", r"\[").replace("]", r"\]")):
        task_send(actor=actor, name=REPORT, args=args, kwargs=kwargs, queue="reports")

    entry = AuditEntry.objects.get()
    assert (entry.action, entry.outcome) == ("task.trigger", "refused")
    assert problem in entry.message and "not recorded" in str(entry.params)
    assert waiting("reports") == 0


def test_retry_with_edits_refuses_them_in_the_form_and_in_the_service(role_client, actor,
                                                                       isolated_broker):
    TaskResult.objects.create(task_id="failed-1", task_name=REPORT, status="FAILURE")
    client = role_client("Support")

    response = client.post(reverse("admin:taskops_taskrun_retry_edited", args=["failed-1"]),
                           {"args": '["r", NaN]', "kwargs": "{}", "queue": "reports"})

    assert response.status_code == 200
    assert "Not accepted: the value at [1] is nan" in response.content.decode()
    assert html.escape('["r", NaN]') in response.content.decode()
    with pytest.raises(ActionRefused, match="lone surrogate"):
        task_retry_edited(actor=actor, task_id="failed-1", call=CapturedCall(
            task=REPORT, args=["\udc00"], kwargs={}, routing_key="reports"))
    assert list(AuditEntry.objects.values_list("action", "outcome")) == [
        ("task.retry_edited", "refused")]
    assert waiting("reports") == 0 and not RunRetry.objects.exists()
