"""Retry through the pages: edited arguments are checked before sending; bad input is a form error."""

from __future__ import annotations

import json
import uuid

import pytest
from django.urls import reverse
from django_celery_results.models import TaskResult
from kombu.utils.json import dumps

from taskops.models import AuditEntry, RetryJob, RunRetry
from tests.support.poll import poll_until
from tests.support.tasks import captured_meta, send, unique

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.db_engine]


def finished(task_id: str):
    return TaskResult.objects.filter(task_id=task_id, status__in=["SUCCESS", "FAILURE"]).first()


@pytest.fixture
def failed_sync(start_worker):
    from demo.models import PartnerStatus

    queue = unique("edit")
    start_worker(queue)
    PartnerStatus.objects.create(name="billing", down=True)
    sent = send("demo.tasks.sync_invoices", args=[str(uuid.uuid4()), "2026-01-01T00:00:00+00:00"],
                queue=queue)
    poll_until(lambda: finished(sent.id), timeout=30, message="the original fails")
    PartnerStatus.objects.filter(name="billing").update(down=False)
    return sent.id, queue


@pytest.fixture
def captured_failure(fake_cluster):
    """A failed sync_invoices run with its call captured as the worker hook stores it (no worker:
    the edited arguments below are refused before anything is sent)."""
    task_id, queue = str(uuid.uuid4()), unique("edit")
    TaskResult.objects.create(
        task_id=task_id, task_name="demo.tasks.sync_invoices", status="FAILURE",
        content_type="application/json", meta=captured_meta(
            "demo.tasks.sync_invoices", args=[str(uuid.uuid4()), "2026-01-01T00:00:00+00:00"],
            routing_key=queue))
    return task_id, queue


@pytest.mark.parametrize(
    ("args", "kwargs", "error"),
    [
        ("[not json", "{}", "Not valid JSON"),
        ('{"a": 1}', "{}", "Must be a JSON list"),
        ("[]", "[]", "Must be a JSON object"),
        ('["only-one-argument"]', '{"nope": 1}', "The arguments do not fit demo.tasks.sync_invoices"),
    ],
)
def test_bad_edited_arguments_show_a_form_error_and_send_nothing(
    role_client, captured_failure, fake_cluster, args, kwargs, error
):
    task_id, queue = captured_failure
    client = role_client("Support")

    response = client.post(reverse("admin:taskops_taskrun_retry_edited", args=[task_id]),
                           {"args": args, "kwargs": kwargs, "queue": queue, "priority": "3"})

    assert response.status_code == 200
    assert error in response.content.decode()
    assert not RunRetry.objects.exists()
    assert not AuditEntry.objects.filter(action="task.retry_edited").exists()
    assert fake_cluster.sent == []


def test_edited_arguments_are_sent_with_their_types(role_client, failed_sync):
    task_id, queue = failed_sync
    client = role_client("Support")
    account = uuid.uuid4()
    edited_args = dumps([account, {"__type__": "datetime", "__value__": "2026-02-01T08:00:00+00:00"}])

    response = client.post(reverse("admin:taskops_taskrun_retry_edited", args=[task_id]),
                           {"args": edited_args, "kwargs": '{"note": "fixed by hand"}',
                            "queue": queue, "priority": "3", "reason": "wrong account"})

    assert response.status_code == 302
    link = RunRetry.objects.get(original_task_id=task_id, edited=True)
    retried = poll_until(lambda: finished(link.retry_task_id), timeout=30, message="edited retry ran")
    result = json.loads(retried.result)
    assert result["account_id"] == str(account)
    assert result["types"] == ["UUID", "datetime", "str"]
    assert result["since"] == "2026-02-01T08:00:00+00:00"
    assert (result["queue"], result["priority"]) == (queue, 3)
    assert AuditEntry.objects.get(action="task.retry_edited").reason == "wrong account"


def test_retry_all_matching_the_filters_becomes_a_job_above_the_inline_limit(
    role_client, isolated_broker, settings
):
    settings.TASKOPS_RETRY_INLINE_LIMIT = 5
    TaskResult.objects.bulk_create(
        TaskResult(task_id=f"legacy-{i}", task_name="demo.tasks.flaky_call", status="FAILURE")
        for i in range(8)
    )
    TaskResult.objects.create(task_id="ok-1", task_name="demo.tasks.flaky_call", status="SUCCESS")
    client = role_client("Support")

    # Asked from a deep page of the list: its position is not a filter, every match is retried.
    listing = {"status__exact": "FAILURE", "before": "2000-01-01T00:00:00+00:00,1"}
    confirmation = client.get(reverse("admin:taskops_taskrun_retry_matching_confirm"), listing)
    assert confirmation.context["sending"] == 8
    response = client.post(reverse("admin:taskops_taskrun_retry_matching"),
                           {**listing, "expected": "8"})

    job = RetryJob.objects.get()
    assert response["Location"] == reverse("admin:taskops_taskrun_job", args=[job.pk])
    assert job.total == 8  # the SUCCESS run does not match the filter
    page = client.get(response["Location"]).content.decode()
    assert "Bulk retry job" in page
