"""Bulk retry has bounds: SUCCESS runs only when chosen, a confirmation with the counts first, and a maximum per job."""

from __future__ import annotations

import html

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django_celery_results.models import TaskResult

from taskops.models import AuditEntry, RetryJob, RunRetry
from taskops.services import ActionRefused, retry_job_create, retry_job_process, task_retry
from tests.integration.test_retry import _failed_runs
from tests.support.tasks import unique, waiting

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.db_engine]

CONFIRM = "admin:taskops_taskrun_retry_matching_confirm"
RETRY_MATCHING = "admin:taskops_taskrun_retry_matching"


def _succeeded_runs(count: int, queue: str) -> list[str]:
    ids = _failed_runs(count, queue)
    TaskResult.objects.filter(task_id__in=ids).update(status="SUCCESS")
    return ids


@pytest.fixture
def runs(isolated_broker):
    """3 failed and 2 succeeded runs of one task, 1 failed run of another, on one queue."""
    queue = unique("bounds")
    failed, succeeded = _failed_runs(3, queue), _succeeded_runs(2, queue)
    [other] = _failed_runs(1, queue)
    TaskResult.objects.filter(task_id=other).update(task_name="demo.tasks.send_email")
    return queue, failed, succeeded, other


def test_the_confirmation_counts_by_state_and_task_in_one_grouped_query_and_sends_nothing(
    role_client, runs
):
    queue, failed, succeeded, other = runs
    task_retry(actor=_system(), task_ids=[failed[0]])  # retried already
    client = role_client("Support")

    with CaptureQueriesContext(connection) as queries:
        page = client.get(reverse(CONFIRM), {"task_name": "demo.tasks.flaky_call"})

    text = html.unescape(page.content.decode())
    assert page.status_code == 200 and page.context["sending"] == 2
    assert 'data-retry-sending="2"' in text and "Runs that succeeded are left out" in text
    assert "1 run retried already will be skipped" in text
    counts = [(c.state, c.task_name, c.runs, c.retried) for c in page.context["preview"].counts]
    assert counts == [("FAILURE", "demo.tasks.flaky_call", 3, 1)]
    grouped = [q["sql"] for q in queries.captured_queries if "GROUP BY" in q["sql"]]
    assert len(grouped) == 1 and "taskops_runretry" in grouped[0] and "LIMIT" in grouped[0]
    assert waiting(queue) == 1 and RunRetry.objects.count() == 1  # only the earlier retry

    everything = client.get(reverse(CONFIRM), {"include_succeeded": "on", "include_retried": "on"})
    counts = {(c.state, c.task_name): c.runs for c in everything.context["preview"].counts}
    assert counts == {("FAILURE", "demo.tasks.flaky_call"): 3, ("SUCCESS", "demo.tasks.flaky_call"): 2,
                      ("FAILURE", "demo.tasks.send_email"): 1}
    assert everything.context["sending"] == 6


def _system():
    from taskops.services import Actor

    return Actor(user=None)


def test_retry_all_matching_leaves_out_succeeded_runs_unless_chosen(role_client, runs):
    queue, failed, succeeded, other = runs
    client = role_client("Support")

    response = client.post(reverse(RETRY_MATCHING), {"expected": "4", "reason": "outage"},
                           follow=True)

    assert "Retried 4 runs" in html.unescape(response.content.decode())
    assert set(RunRetry.objects.values_list("original_task_id", flat=True)) == {*failed, other}
    client.post(reverse(RETRY_MATCHING), {"expected": "2", "include_succeeded": "on"})
    assert set(RunRetry.objects.values_list("original_task_id", flat=True)) == {
        *failed, other, *succeeded}
    assert waiting(queue) == 6


def test_posting_without_the_confirmation_sends_nothing_and_shows_it(role_client, runs):
    queue, *_ = runs
    client = role_client("Support")

    unconfirmed = client.post(reverse(RETRY_MATCHING), {"status__exact": "FAILURE"})
    assert unconfirmed.status_code == 302
    assert unconfirmed["Location"].startswith(reverse(CONFIRM) + "?")
    assert "status__exact=FAILURE" in unconfirmed["Location"]
    more_now = client.post(reverse(RETRY_MATCHING), {"status__exact": "FAILURE", "expected": "2"},
                           follow=True)

    assert ("4 runs would be sent now, more than the 2 you confirmed"
            in html.unescape(more_now.content.decode()))
    assert waiting(queue) == 0 and not RunRetry.objects.exists()
    assert not AuditEntry.objects.exists()


def test_a_job_over_the_maximum_is_refused_naming_the_setting(role_client, actor, runs, settings):
    settings.TASKOPS_BULK_RETRY_MAX, settings.TASKOPS_RETRY_INLINE_LIMIT = 3, 2
    queue, failed, succeeded, other = runs
    client = role_client("Support")

    page = client.get(reverse(CONFIRM))
    refused = client.post(reverse(RETRY_MATCHING), {"expected": "4", "reason": "outage"},
                          follow=True)

    assert "More than 3 runs match" in page.content.decode()
    assert "TASKOPS_BULK_RETRY_MAX" in page.content.decode() and 'name="expected"' not in (
        page.content.decode())
    assert ("More than 3 runs in one bulk retry is refused (TASKOPS_BULK_RETRY_MAX=3)"
            in html.unescape(refused.content.decode()))
    with pytest.raises(ActionRefused, match="TASKOPS_BULK_RETRY_MAX=3"):
        retry_job_create(actor=actor, task_ids=iter([*failed, other, *succeeded]),
                         description="too many", reason="outage")
    assert not RetryJob.objects.exists() and waiting(queue) == 0
    assert list(AuditEntry.objects.values_list("action", "outcome")) == [
        ("task.retry_bulk", "refused"), ("task.retry_bulk", "refused")]


def test_a_job_refuses_succeeded_runs_unless_they_were_chosen(actor, runs, settings):
    settings.TASKOPS_BULK_RETRY_REASON_THRESHOLD = 100
    queue, failed, succeeded, other = runs
    plain = retry_job_create(actor=actor, task_ids=iter(succeeded), description="succeeded")
    retry_job_process(plain.pk, owner="test")
    plain.refresh_from_db()
    assert (plain.sent, plain.refused) == (0, 2)
    assert "the run succeeded" in plain.items.first().reason

    chosen = retry_job_create(actor=actor, task_ids=iter(succeeded), description="on purpose",
                              include_succeeded=True)
    retry_job_process(chosen.pk, owner="test")
    chosen.refresh_from_db()
    assert (chosen.sent, chosen.refused) == (2, 0) and waiting(queue) == 2


def test_the_list_action_leaves_out_succeeded_runs_unless_included(admin_client, runs):
    queue, failed, succeeded, other = runs
    selected = list(TaskResult.objects.filter(task_id__in=[failed[0], *succeeded])
                    .values_list("pk", flat=True))
    action = {"action": "retry_selected", "_selected_action": selected, "index": "0"}

    admin_client.post(reverse("admin:taskops_taskrun_changelist"), action)
    assert list(RunRetry.objects.values_list("original_task_id", flat=True)) == [failed[0]]
    admin_client.post(reverse("admin:taskops_taskrun_changelist"),
                      {**action, "include_succeeded": "on"})
    assert RunRetry.objects.count() == 3 and waiting(queue) == 3
