"""Never twice by accident: a run retried already is retried again only when asked, and concurrent retries never claim the same run."""

from __future__ import annotations

import html
import threading

import pytest
from django.db import connections
from django.urls import reverse
from django_celery_results.models import TaskResult

from taskops import control
from taskops.models import AuditEntry, RetryJob, RetryJobItem, RunRetry
from taskops.publish import Send
from taskops.services import Actor, retry_job_create, task_retry
from taskops.services import retries as retry_service
from taskops.services.retries import retries_claim, retry_plans
from tests.integration.test_retry import FLAKY, _failed_runs, executed
from tests.support.poll import poll_until
from tests.support.tasks import unique, waiting

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.db_engine]


def _drained(worker, queue: str) -> bool:
    return waiting(queue) == 0 and not control.worker_snapshots([worker.name])[worker.name].active


def test_two_bulk_jobs_over_the_same_200_runs_at_once_run_each_exactly_once(start_worker, actor):
    queue = unique("twice")
    originals = _failed_runs(200, queue)
    executor = start_worker(queue, concurrency=2)
    # Two runner processes, small chunks with a pause between them: the jobs interleave.
    start_worker("default", concurrency=2, env={"TASKOPS_RETRY_CHUNK_SIZE": "20",
                                                "TASKOPS_RETRY_CHUNK_DELAY": "0.05"})

    jobs = [retry_job_create(actor=actor, task_ids=iter(originals), description=f"person {n}",
                             reason="partner outage is over") for n in (1, 2)]

    done = [poll_until(lambda j=job: RetryJob.objects.filter(pk=j.pk, state="done").first(),
                       timeout=120, message=f"job {job.pk} finishes") for job in jobs]
    assert all(job.started_at is not None for job in done)
    assert sum(job.sent for job in done) == 200 and sum(job.skipped for job in done) == 200
    poll_until(lambda: executed(executor) >= 200, timeout=120, message="every retry ran")
    poll_until(lambda: _drained(executor, queue), timeout=30, message="nothing left to run")
    assert executed(executor) == 200  # not 400
    assert RunRetry.objects.values("original_task_id").distinct().count() == 200
    assert RunRetry.objects.count() == 200
    assert RetryJobItem.objects.filter(state="skipped").count() == 200


def test_two_people_retrying_the_same_runs_inline_at_once_send_each_once(start_worker, actor,
                                                                          django_user_model):
    queue = unique("inline")
    originals = _failed_runs(60, queue)
    executor = start_worker(queue, concurrency=2)
    other = type(actor)(user=django_user_model.objects.create_superuser("colleague", password="x"))
    start = threading.Barrier(2)
    outcomes = []

    def retry(person):
        try:
            start.wait()
            outcomes.append(task_retry(actor=person, task_ids=originals, reason="at once"))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=retry, args=(person,)) for person in (actor, other)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(outcomes) == 2
    assert sum(len(o.detail.get("retries", {})) for o in outcomes) == 60
    assert sum(len(o.detail.get("skipped", {})) for o in outcomes) == 60
    poll_until(lambda: executed(executor) >= 60, timeout=60, message="the retries ran")
    poll_until(lambda: _drained(executor, queue), timeout=30, message="nothing left to run")
    assert executed(executor) == 60


def test_the_database_decides_when_both_claimed_on_a_stale_read(actor, isolated_broker, monkeypatch):
    queue = unique("stale")
    originals = _failed_runs(3, queue)
    plans = retry_plans(originals)
    first, _ = retries_claim([plans[t].send(f"first-{t}") for t in originals], user_id=None)
    # The second claimer (asking to include runs retried already) read before the first
    # committed: it saw no retry, so it asks for the same first attempt.
    monkeypatch.setattr(retry_service, "latest_retries", lambda task_ids: {})

    second, skipped = retries_claim([plans[t].send(f"second-{t}") for t in originals], user_id=None,
                                    include_retried=True)

    assert len(first) == 3 and second == []
    assert set(skipped) == set(originals)
    assert set(RunRetry.objects.values_list("retry_task_id", flat=True)) == {
        f"first-{t}" for t in originals}


def _retry_url(task_id: str) -> str:
    return reverse("admin:taskops_taskrun_retry", args=[task_id])


def test_the_run_page_says_it_was_retried_and_another_retry_needs_retry_again(role_client,
                                                                             isolated_broker):
    queue = unique("page")
    [original] = _failed_runs(1, queue)
    client = role_client("Support")
    page_url = reverse("admin:taskops_taskrun_detail", args=[original])

    assert client.post(_retry_url(original), {"reason": "first"}).status_code == 302
    first = RunRetry.objects.get(original_task_id=original).retry_task_id
    TaskResult.objects.create(task_id=first, task_name=FLAKY, status="FAILURE")
    page = html.unescape(client.get(page_url).content.decode())
    assert "Retried already → " in page and f'href="/admin/taskops/taskrun/run/{first}/"' in page
    assert 'data-retried' in page and "FAILURE" in page and 'name="again"' in page
    assert f'name="again_after" value="{first}"' in page

    refused = client.post(_retry_url(original), {"reason": "second click"}, follow=True)

    assert f"the run was retried already as {first}" in html.unescape(refused.content.decode())
    assert RunRetry.objects.count() == 1 and waiting(queue) == 1
    assert client.post(_retry_url(original), {"again": "on", "again_after": first,
                                              "reason": "it failed again"}).status_code == 302
    second = RunRetry.objects.get(original_task_id=original, attempt=2).retry_task_id
    assert waiting(queue) == 2
    # Someone who saw only the first retry asks for another: refused, the second is named.
    stale = client.post(_retry_url(original), {"again": "on", "again_after": first}, follow=True)
    assert f"retried already as {second}" in html.unescape(stale.content.decode())
    assert RunRetry.objects.count() == 2 and waiting(queue) == 2
    assert list(AuditEntry.objects.filter(action="task.retry").order_by("id")
                .values_list("outcome", flat=True)) == ["ok", "refused", "ok", "refused"]


def test_retry_with_edits_of_a_run_retried_already_asks_for_retry_again_and_keeps_the_text(
    role_client, isolated_broker
):
    queue = unique("edit")
    [original] = _failed_runs(1, queue)
    client = role_client("Support")
    client.post(_retry_url(original), {})
    first = RunRetry.objects.get().retry_task_id
    url = reverse("admin:taskops_taskrun_retry_edited", args=[original])
    edited = {"args": '["endpoint-fixed"]', "kwargs": '{"fail_rate": 0.0}', "queue": queue}

    response = client.post(url, {**edited, "again_after": first})

    assert response.status_code == 200
    text = html.unescape(response.content.decode())
    assert f"This run was retried already as {first}: tick to send another retry." in text
    assert "endpoint-fixed" in text  # what was typed is kept
    assert RunRetry.objects.count() == 1 and waiting(queue) == 1
    assert client.post(url, {**edited, "again": "on", "again_after": first}).status_code == 302
    assert RunRetry.objects.get(attempt=2).edited and waiting(queue) == 2


def test_list_actions_skip_runs_retried_already_and_say_how_many_unless_included(
    admin_client, isolated_broker
):
    queue = unique("list")
    originals = _failed_runs(4, queue)
    assert task_retry(actor=Actor(user=None), task_ids=originals[:3]).ok
    changelist = reverse("admin:taskops_taskrun_changelist")
    selected = list(TaskResult.objects.filter(task_id__in=originals).values_list("pk", flat=True))
    action = {"action": "retry_selected", "_selected_action": selected, "index": "0"}

    response = admin_client.post(changelist, action, follow=True)

    text = html.unescape(response.content.decode())
    assert "Retried 1 run" in text and "Skipped 3 runs retried already" in text
    assert waiting(queue) == 4
    again = admin_client.post(changelist, {**action, "include_retried": "on"}, follow=True)
    assert "Retried 4 runs" in html.unescape(again.content.decode())
    assert waiting(queue) == 8
    assert sorted(RunRetry.objects.values_list("attempt", flat=True)) == [1, 1, 1, 1, 2, 2, 2, 2]


def test_a_bulk_job_skips_runs_retried_already_and_its_page_says_how_many(actor, admin_client,
                                                                         isolated_broker):
    from taskops.services import retry_job_process

    queue = unique("job")
    originals = _failed_runs(6, queue)
    task_retry(actor=actor, task_ids=originals[:2])
    job = RetryJob.objects.create(description="six", total=6)
    RetryJobItem.objects.bulk_create(RetryJobItem(job=job, task_id=t) for t in originals)

    done = retry_job_process(job.pk, owner="test")

    assert (done.state, done.sent, done.skipped, done.refused) == ("done", 4, 2, 0)
    assert waiting(queue) == 6
    page = admin_client.get(reverse("admin:taskops_taskrun_job", args=[job.pk])).content.decode()
    assert 'data-job-skipped>2<' in page and "100 %" in page


def test_a_retry_the_broker_surely_did_not_get_leaves_no_claim(actor, isolated_broker):
    [original] = _failed_runs(1, unique("down"))
    isolated_broker.stop()

    outcome = task_retry(actor=actor, task_ids=[original])

    assert outcome.outcome == "failed" and not RunRetry.objects.exists()


def test_a_retry_whose_delivery_is_uncertain_keeps_its_claim(actor, isolated_broker, monkeypatch):
    from taskops.publish import DeliveryUncertain

    [original] = _failed_runs(1, unique("uncertain"))

    def flush_failed(sends: list[Send], **options):
        raise DeliveryUncertain("publishing failed, delivery uncertain: connection reset")

    monkeypatch.setattr(retry_service, "calls_publish", flush_failed)

    outcome = task_retry(actor=actor, task_ids=[original])

    assert outcome.outcome == "failed" and "Delivery is uncertain" in outcome.message
    assert RunRetry.objects.filter(original_task_id=original).exists()
