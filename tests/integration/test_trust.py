"""Safety that cannot be side-stepped: resumes, known queues, ceilings, and the intent recorded before the effect."""

from __future__ import annotations

from datetime import timedelta

import pytest
import redis
from django.db import DatabaseError
from django.urls import reverse
from django.utils import timezone
from django_celery_results.models import TaskResult

from taskops import broker, publish
from taskops.models import AuditEntry, PendingAction, RetryJob
from taskops.services import ActionRefused, Actor, retry_job_create, retry_job_resume, task_send
from taskops.selectors.live import cluster_reading
from taskops.services.live import queue_pause, queue_purge, worker_pool_resize
from tests.support.tasks import send, unique, waiting

pytestmark = pytest.mark.django_db(transaction=True)


def _failed_runs(count: int) -> list[str]:
    ids = [unique("failed") for _ in range(count)]
    TaskResult.objects.bulk_create(TaskResult(task_id=i, task_name="demo.tasks.flaky_call",
                                              status="FAILURE") for i in ids)
    return ids


@pytest.mark.db_engine
@pytest.mark.parametrize("decision", ["waiting", "rejected", "withdrawn", "expired"])
def test_a_bulk_job_under_an_approval_that_is_not_given_cannot_be_resumed(
    decision, actor, isolated_broker, settings
):
    settings.TASKOPS_BULK_RETRY_REASON_THRESHOLD, settings.TASKOPS_REQUIRE_APPROVAL = 2, True
    job = retry_job_create(actor=actor, task_ids=_failed_runs(3), description="three",
                           reason="partner is back")
    pending = PendingAction.objects.get(pk=job.pending_approval)
    if decision != "waiting":
        state = {"rejected": "rejected", "withdrawn": "cancelled", "expired": "pending"}[decision]
        PendingAction.objects.filter(pk=pending.pk).update(
            state=state, expires_at=timezone.now() - timedelta(minutes=1))

    with pytest.raises(ActionRefused, match=f"approval request #{pending.pk}"):
        retry_job_resume(actor=actor, job_id=job.pk, reason="go")

    job.refresh_from_db()
    assert (job.state, job.sent) == ("queued", 0)
    assert waiting(settings.TASKOPS_QUEUE) == 0  # no runner was queued
    assert AuditEntry.objects.filter(action="task.retry_bulk_resume").get().outcome == "refused"


@pytest.mark.db_engine
def test_a_running_job_is_resumed_only_once_its_runners_lease_ran_out(actor, isolated_broker, settings):
    job = RetryJob.objects.create(description="stuck", total=3, state=RetryJob.State.RUNNING,
                                  lease_owner="runner-1",
                                  lease_until=timezone.now() + timedelta(minutes=1))

    with pytest.raises(ActionRefused, match="its runner holds it"):
        retry_job_resume(actor=actor, job_id=job.pk)
    assert waiting(settings.TASKOPS_QUEUE) == 0

    RetryJob.objects.filter(pk=job.pk).update(lease_until=timezone.now() - timedelta(seconds=1))
    assert retry_job_resume(actor=actor, job_id=job.pk).ok
    assert waiting(settings.TASKOPS_QUEUE) == 1

    RetryJob.objects.filter(pk=job.pk).update(state=RetryJob.State.FAILED, lease_until=None)
    assert retry_job_resume(actor=actor, job_id=job.pk).ok
    assert waiting(settings.TASKOPS_QUEUE) == 2


@pytest.mark.db_engine
def test_resume_over_http_of_a_job_waiting_for_approval_sends_nothing(
    actor, isolated_broker, settings, client
):
    settings.TASKOPS_BULK_RETRY_REASON_THRESHOLD, settings.TASKOPS_REQUIRE_APPROVAL = 2, True
    job = retry_job_create(actor=actor, task_ids=_failed_runs(3), description="three",
                           reason="partner is back")
    client.force_login(actor.user)

    response = client.post(reverse("admin:taskops_taskrun_job_resume", args=[job.pk]),
                           {"reason": "now"}, follow=True)

    assert "only its approval starts it" in response.content.decode()
    assert waiting(settings.TASKOPS_QUEUE) == 0


def test_queue_actions_refuse_names_the_console_does_not_know(actor, isolated_broker):
    client = redis.Redis.from_url(isolated_broker.url)
    client.hset("unacked", "tag-1", "a message a worker holds")

    for perform in (lambda: queue_pause(actor=actor, queue="unacked"),
                    lambda: queue_purge(actor=actor, queue="unacked", confirm="unacked",
                                        reason="cleanup")):
        with pytest.raises(ActionRefused, match="There is no queue 'unacked'"):
            perform()

    assert client.hlen("unacked") == 1
    assert list(AuditEntry.objects.order_by("id").values_list("action", "outcome")) == [
        ("queue.pause", "refused"), ("queue.purge", "refused")]


def test_a_sender_cannot_make_kombus_own_keys_purgeable_by_naming_a_queue_after_them(
    actor, isolated_broker
):
    client = redis.Redis.from_url(isolated_broker.url)
    client.hset("unacked", "tag-1", "a message a worker holds")
    client.sadd("_kombu.binding.hostile", "unacked\x06\x16\x06\x16unacked")  # a queue "unacked"

    reading = cluster_reading()
    with pytest.raises(ActionRefused, match="There is no queue 'unacked'"):
        queue_purge(actor=actor, queue="unacked", confirm="unacked", reason="cleanup")
    with pytest.raises(broker.QueueNotPurgeable, match="the broker's own keys"):
        broker.queue_purge("unacked")  # and the broker reader refuses it on its own

    assert reading.broker_ok and reading.queue("unacked") is None, reading.banners
    assert client.hlen("unacked") == 1
    assert AuditEntry.objects.get().outcome == "refused"


def test_a_known_queue_is_still_purged(actor, isolated_broker):
    queue = unique("known")
    for n in range(2):
        send("demo.tasks.generate_report", args=[f"r{n}"], queue=queue)  # seen in the broker

    outcome = queue_purge(actor=actor, queue=queue, confirm=queue, reason="bad deploy")

    assert outcome.ok, outcome.message
    assert waiting(queue) == 0


def test_pool_changes_stop_at_the_ceiling_per_worker(actor, settings):
    settings.TASKOPS_WORKER_POOL_MAX = 8

    with pytest.raises(ActionRefused, match="1 to 8 processes"):
        worker_pool_resize(actor=actor, worker="w@host", delta=9)

    assert AuditEntry.objects.get().outcome == "refused"


def test_the_intent_is_recorded_before_the_task_is_published(actor, isolated_broker, monkeypatch):
    seen: list[tuple[str, str]] = []
    real = publish.calls_publish

    def watching(sends, **options):
        seen.extend(AuditEntry.objects.values_list("action", "outcome"))
        return real(sends, **options)

    monkeypatch.setattr("taskops.services.catalog.calls_publish", watching)

    outcome = task_send(actor=actor, name="demo.tasks.generate_report", args=["r"], kwargs={},
                        queue="reports")

    assert outcome.ok
    assert seen == [("task.trigger", "started")]
    entry = AuditEntry.objects.get()
    assert (entry.outcome, entry.params["task_id"]) == ("ok", outcome.detail["task_id"])


def test_a_database_failure_after_publishing_is_told_not_hidden_and_leaves_the_intent(
    actor, isolated_broker, client, monkeypatch
):
    queue = "reports"  # the console sends only to queues it knows

    def database_gone(*args, **kwargs):
        raise DatabaseError("connection reset by peer")

    monkeypatch.setattr(AuditEntry.objects, "finish", database_gone)
    client.force_login(actor.user)

    response = client.post(
        reverse("admin:taskops_task_run", args=["demo.tasks.generate_report"]),
        {"arg_report": '"r"', "queue": queue, "reason": ""}, follow=True)

    assert response.status_code == 200
    assert "could not record this outcome" in response.content.decode()
    assert waiting(queue) == 1  # it was sent, and the page says so
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.outcome) == ("task.trigger", "started")
