"""Dangerous actions: a typed reason, second-person approval, expiry, read-only mode, the audit log."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from taskops.models import AuditEntry, PendingAction
from taskops.services import ActionRefused, Actor, approval_decide, approval_cancel
from taskops.services.live import queue_purge
from tests.support.tasks import send, unique, waiting

pytestmark = pytest.mark.django_db(transaction=True)


def _member(django_user_model, group: str, name: str):
    user = django_user_model.objects.create_user(name, password="x", is_staff=True)
    user.groups.add(Group.objects.get(name=group))
    return django_user_model.objects.get(pk=user.pk)


@pytest.fixture
def people(django_user_model):
    return {
        "ops1": Actor(_member(django_user_model, "Operations", "ops1"), "10.0.0.1"),
        "ops2": Actor(_member(django_user_model, "Operations", "ops2"), "10.0.0.2"),
        "support": Actor(_member(django_user_model, "Support", "helpdesk"), "10.0.0.3"),
    }


@pytest.fixture
def full_queue(isolated_broker):
    queue = unique("danger")
    for n in range(3):
        send("demo.tasks.generate_report", args=[f"r{n}"], queue=queue)
    return queue


def test_a_purge_without_a_reason_is_refused_and_audited(people, full_queue):
    with pytest.raises(ActionRefused, match="needs a reason"):
        queue_purge(actor=people["ops1"], queue=full_queue, confirm=full_queue, reason=" ")

    assert waiting(full_queue) == 3
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.outcome, entry.actor_name) == ("queue.purge", "refused", "ops1")


@pytest.mark.db_engine
def test_with_approvals_on_a_purge_waits_for_a_second_person_with_the_permission(
    people, full_queue, settings
):
    settings.TASKOPS_REQUIRE_APPROVAL = True

    asked = queue_purge(actor=people["ops1"], queue=full_queue, confirm=full_queue,
                        reason="poison messages from the bad deploy")

    assert asked.outcome == "pending" and "approval" in asked.message
    assert waiting(full_queue) == 3
    pending = PendingAction.objects.get()
    assert (pending.action, pending.target, pending.state) == ("queue.purge", full_queue, "pending")

    with pytest.raises(ActionRefused, match="someone else"):
        approval_decide(actor=people["ops1"], approval_id=pending.pk, approve=True)
    with pytest.raises(ActionRefused, match="allowed to do this action"):
        approval_decide(actor=people["support"], approval_id=pending.pk, approve=True)
    assert waiting(full_queue) == 3

    done = approval_decide(actor=people["ops2"], approval_id=pending.pk, approve=True, reason="ok")

    assert done.ok, done.message
    assert waiting(full_queue) == 0
    pending.refresh_from_db()
    assert (pending.state, pending.decided_by_name, pending.outcome) == ("approved", "ops2", "ok")
    trail = list(AuditEntry.objects.order_by("id").values_list("action", "actor_name", "outcome"))
    assert trail == [
        ("queue.purge", "ops1", "pending"),
        ("approval.approve", "ops1", "refused"),
        ("approval.approve", "helpdesk", "refused"),
        ("approval.approve", "ops2", "ok"),
        ("queue.purge", "ops2", "ok"),
    ]
    executed = AuditEntry.objects.filter(action="queue.purge", outcome="ok").get()
    assert "asked by ops1" in executed.reason and "poison messages" in executed.reason

    with pytest.raises(ActionRefused, match="not pending"):
        approval_decide(actor=people["ops2"], approval_id=pending.pk, approve=True)


@pytest.mark.db_engine
def test_an_expired_or_rejected_request_is_never_carried_out(people, full_queue, settings):
    settings.TASKOPS_REQUIRE_APPROVAL = True
    queue_purge(actor=people["ops1"], queue=full_queue, confirm=full_queue, reason="first try")
    queue_purge(actor=people["ops1"], queue=full_queue, confirm=full_queue, reason="second try")
    stale, rejected = PendingAction.objects.order_by("id")
    PendingAction.objects.filter(pk=stale.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    viewer = Client()
    viewer.force_login(people["ops2"].user)
    listing = viewer.get(reverse("admin:taskops_pendingaction_changelist")).content.decode()
    assert listing.count("<td class=\"field-state_now\">Expired</td>") == 1
    assert PendingAction.objects.get(pk=stale.pk).state == "pending"  # a GET writes nothing

    with pytest.raises(ActionRefused, match="expired"):
        approval_decide(actor=people["ops2"], approval_id=stale.pk, approve=True)
    approval_decide(actor=people["ops2"], approval_id=rejected.pk, approve=False, reason="not now")
    with pytest.raises(ActionRefused, match="no longer pending"):
        approval_cancel(actor=people["ops1"], approval_id=rejected.pk)

    assert waiting(full_queue) == 3
    assert dict(PendingAction.objects.values_list("pk", "state")) == {
        stale.pk: "expired", rejected.pk: "rejected"}


def test_the_approval_page_offers_the_decision_to_another_member_only(people, full_queue, settings):
    settings.TASKOPS_REQUIRE_APPROVAL = True
    requester, approver = Client(), Client()
    requester.force_login(people["ops1"].user)
    approver.force_login(people["ops2"].user)

    response = requester.post(reverse("admin:taskops_queue_purge", args=[full_queue]),
                              {"confirm": full_queue, "reason": "bad deploy"}, follow=True)
    assert "Waiting for approval by a second person" in response.content.decode()
    pending = PendingAction.objects.get()
    page = reverse("admin:taskops_pendingaction_change", args=[pending.pk])
    assert "Withdraw the request" in requester.get(page).content.decode()
    assert "Approve and carry out" not in requester.get(page).content.decode()
    assert "Approve and carry out" in approver.get(page).content.decode()

    response = approver.post(reverse("admin:taskops_pendingaction_decide", args=[pending.pk]),
                             {"decision": "approve", "reason": "seen it"}, follow=True)

    assert f"Purged 3 waiting messages from {full_queue}" in response.content.decode()
    assert waiting(full_queue) == 0


def test_read_only_mode_refuses_every_mutation_and_hides_the_buttons(role_client, full_queue, settings):
    settings.TASKOPS_READ_ONLY = True
    client = role_client("Operations")

    response = client.post(reverse("admin:taskops_queue_purge", args=[full_queue]),
                           {"confirm": full_queue, "reason": "try anyway"})

    assert response.status_code == 403
    page = client.get(reverse("admin:taskops_queue_detail", args=[full_queue])).content.decode()
    assert "Delete every waiting message" not in page and "Pause" not in page
    assert waiting(full_queue) == 3
    assert list(AuditEntry.objects.values_list("action", "outcome")) == [("request.refused", "refused")]


def test_the_audit_log_is_append_only(people):
    entry = AuditEntry.objects.create(actor_name="x", action="queue.pause", outcome="ok")
    entry.reason = "rewritten"
    with pytest.raises(TypeError):
        entry.save()
    with pytest.raises(TypeError):
        AuditEntry.objects.filter(pk=entry.pk).update(reason="rewritten")
    with pytest.raises(TypeError):
        AuditEntry.objects.all().delete()
    assert AuditEntry.objects.get().reason == ""


def _export(client, fmt_index: str):
    fields = ["id", "created_at", "actor_name", "source_ip", "action", "target", "params",
              "reason", "outcome", "message", "detail"]
    data = {"format": fmt_index, "resource": "0",
            **{f"auditentryresource_{f}": "on" for f in fields}}
    return client.post(reverse("admin:taskops_auditentry_export") + "?action=queue.purge", data)


def test_operations_export_the_filtered_audit_log_and_support_may_not(role_client, people, full_queue):
    with pytest.raises(ActionRefused):
        queue_purge(actor=people["ops1"], queue=full_queue, confirm="wrong", reason="x")
    AuditEntry.objects.create(actor_name="other", action="queue.pause", outcome="ok", target="q")

    ops = role_client("Operations")
    as_csv = _export(ops, "0")
    rows = list(csv.DictReader(io.StringIO(as_csv.content.decode())))
    assert [(r["action"], r["actor_name"], r["outcome"]) for r in rows] == [
        ("queue.purge", "ops1", "refused")]
    assert rows[0]["target"] == full_queue
    as_json = json.loads(_export(ops, "2").content)
    assert [row["action"] for row in as_json] == ["queue.purge"]
    as_xlsx = _export(ops, "1")
    assert as_xlsx["Content-Type"].startswith("application/vnd.openxmlformats")

    support = Client()
    support.force_login(people["support"].user)
    assert _export(support, "0").status_code == 403


def test_every_page_tells_who_may_decide_that_requests_wait_and_shows_read_only_mode(
    people, full_queue, settings
):
    settings.TASKOPS_REQUIRE_APPROVAL = True
    queue_purge(actor=people["ops1"], queue=full_queue, confirm=full_queue, reason="bad deploy")
    requester, approver, support = Client(), Client(), Client()
    requester.force_login(people["ops1"].user)
    approver.force_login(people["ops2"].user)
    support.force_login(people["support"].user)
    index = reverse("admin:index")

    assert 'data-approvals-waiting="1"' in approver.get(index).content.decode()
    assert "data-approvals-waiting" not in requester.get(index).content.decode()
    assert "data-approvals-waiting" not in support.get(index).content.decode()  # may not purge

    settings.TASKOPS_READ_ONLY = True
    assert "Read-only mode" in approver.get(index).content.decode()


@pytest.mark.db_engine
def test_a_big_bulk_retry_needs_a_reason_and_with_approvals_waits_for_a_second_person(
    people, isolated_broker, settings, django_user_model
):
    from django_celery_results.models import TaskResult

    from taskops.models import RetryJob
    from taskops.services import retry_job_create

    settings.TASKOPS_BULK_RETRY_REASON_THRESHOLD = 3
    ids = [f"bulk-{n}" for n in range(5)]
    TaskResult.objects.bulk_create(TaskResult(task_id=i, task_name="demo.tasks.flaky_call",
                                              status="FAILURE") for i in ids)

    with pytest.raises(ActionRefused, match="needs a reason"):
        retry_job_create(actor=people["ops1"], task_ids=iter(ids), description="five", reason="")
    assert not RetryJob.objects.exists()
    assert AuditEntry.objects.get().outcome == "refused"

    settings.TASKOPS_REQUIRE_APPROVAL = True
    job = retry_job_create(actor=people["ops1"], task_ids=iter(ids), description="five",
                           reason="partner is back")
    assert job.pending_approval and job.state == "queued"
    pending = PendingAction.objects.get(pk=job.pending_approval)
    assert (pending.action, pending.params) == ("task.retry_bulk", {"job": job.pk, "runs": 5})

    done = approval_decide(actor=people["support"], approval_id=pending.pk, approve=True)

    assert done.ok, done.message
    assert f"Bulk retry job {job.pk} of 5 runs started" in done.message
    assert list(AuditEntry.objects.order_by("id").values_list("action", "outcome")) == [
        ("task.retry_bulk", "refused"), ("task.retry_bulk", "pending"),
        ("approval.approve", "ok"), ("task.retry_bulk", "ok")]
