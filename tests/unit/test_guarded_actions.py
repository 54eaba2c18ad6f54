"""Guards that once broke without a test failing: refused retries, approvals, terminate, revoke retention.

On the in-memory cluster (tests/support/fakes.py): what a service sent to the workers is read
from the fake's record of commands and publishes, so "nothing was sent" is an observation.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone
from django_celery_results.models import TaskResult

from taskops.models import AuditEntry, PendingAction, PendingRevoke
from taskops.services import (
    ActionRefused,
    Actor,
    approval_cancel,
    approval_decide,
    cluster_sample,
    queue_purge,
    task_retry,
    task_revoke,
)

pytestmark = pytest.mark.django_db

WORKER = "w1@host"


def _member(django_user_model, group: str, name: str) -> Actor:
    user = django_user_model.objects.create_user(name, password="x", is_staff=True)
    user.groups.add(Group.objects.get(name=group))
    return Actor(django_user_model.objects.get(pk=user.pk), "10.0.0.9")


@pytest.fixture
def people(django_user_model):
    return {name: _member(django_user_model, group, name) for name, group in
            [("ops1", "Operations"), ("ops2", "Operations"), ("helpdesk", "Support")]}


# --- a retry whose runs are all refused -----------------------------------------------------------


def test_a_retry_whose_runs_are_all_refused_still_writes_its_audit_entry(actor, fake_cluster):
    TaskResult.objects.create(task_id="legacy-run", task_name="demo.tasks.flaky_call",
                              status="FAILURE", meta=None)
    TaskResult.objects.create(task_id="running-run", task_name="demo.tasks.flaky_call",
                              status="STARTED")

    outcome = task_retry(actor=actor, task_ids=["legacy-run", "running-run", "no-such-run"],
                         reason="partner is back")

    assert outcome.outcome == "refused"
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.outcome, entry.reason) == ("task.retry", "refused", "partner is back")
    assert entry.target == "3 runs"
    assert entry.params["task_ids"] == ["legacy-run", "running-run", "no-such-run"]
    assert set(entry.detail["refused"]) == {"legacy-run", "running-run", "no-such-run"}
    assert "no call was captured" in entry.message
    assert fake_cluster.sent == []


# --- approvals: who may reject, who may withdraw --------------------------------------------------


@pytest.fixture
def purge_request(people, fake_cluster, settings) -> PendingAction:
    """ops1 asked to purge a queue (approvals on); nothing was purged yet."""
    settings.TASKOPS_REQUIRE_APPROVAL = True
    fake_cluster.worker_add(WORKER, "billing")
    asked = queue_purge(actor=people["ops1"], queue="billing", confirm="billing",
                        reason="poison messages from the bad deploy")
    assert asked.outcome == "pending", asked.message
    return PendingAction.objects.get()


def test_rejecting_a_request_needs_the_permission_of_its_action(people, purge_request):
    with pytest.raises(ActionRefused, match="Only someone allowed to do this action"):
        approval_decide(actor=people["helpdesk"], approval_id=purge_request.pk, approve=False,
                        reason="I do not like it")

    purge_request.refresh_from_db()
    assert purge_request.state == "pending"
    assert AuditEntry.objects.filter(action="approval.reject").get().outcome == "refused"

    rejected = approval_decide(actor=people["ops2"], approval_id=purge_request.pk, approve=False,
                               reason="not now")

    assert rejected.ok
    purge_request.refresh_from_db()
    assert (purge_request.state, purge_request.decided_by_name) == ("rejected", "ops2")


def test_only_the_requester_may_withdraw_a_request(people, purge_request):
    for other in ("ops2", "helpdesk"):  # ops2 may purge, and may still not withdraw ops1's request
        with pytest.raises(ActionRefused, match="Only the person who asked"):
            approval_cancel(actor=people[other], approval_id=purge_request.pk)
    purge_request.refresh_from_db()
    assert purge_request.state == "pending"
    assert list(AuditEntry.objects.filter(action="approval.cancel").order_by("id").values_list(
        "actor_name", "outcome")) == [("ops2", "refused"), ("helpdesk", "refused")]

    withdrawn = approval_cancel(actor=people["ops1"], approval_id=purge_request.pk)

    assert withdrawn.ok
    purge_request.refresh_from_db()
    assert purge_request.state == "cancelled"


# --- terminate: a reason, and with approvals a second person ----------------------------------------


@pytest.fixture
def running(fake_cluster) -> str:
    """A task running on the one worker (which is online as far as the console knows)."""
    from taskops.models import WorkerSeen

    fake_cluster.worker_add(WORKER, "default")
    WorkerSeen.objects.create(name=WORKER, online=True, last_seen_at=timezone.now())
    fake_cluster.task_running(WORKER, "stuck-task", "demo.tasks.slow_task", [600], {}, "default")
    return "stuck-task"


def test_terminate_needs_a_reason(people, running, fake_cluster):
    for reason in ("", "   ", "no"):
        with pytest.raises(ActionRefused, match="needs a reason"):
            task_revoke(actor=people["helpdesk"], task_ids=[running], terminate=True, reason=reason)

    assert fake_cluster.commands_named("revoke") == []
    assert [t.id for t in fake_cluster.workers[WORKER].active] == [running]
    assert list(AuditEntry.objects.values_list("action", "outcome")) == [("task.terminate", "refused")] * 3
    assert not PendingRevoke.objects.exists()


def test_with_approvals_on_terminate_waits_for_a_second_person(people, running, fake_cluster, settings):
    settings.TASKOPS_REQUIRE_APPROVAL = True

    asked = task_revoke(actor=people["helpdesk"], task_ids=[running], terminate=True,
                        signal="SIGKILL", reason="stuck on a dead socket")

    assert asked.outcome == "pending", asked.message
    assert fake_cluster.commands_named("revoke") == []
    assert [t.id for t in fake_cluster.workers[WORKER].active] == [running]
    pending = PendingAction.objects.get()
    assert (pending.action, pending.params["task_ids"], pending.params["signal"]) == (
        "task.terminate", [running], "SIGKILL")
    with pytest.raises(ActionRefused, match="someone else"):
        approval_decide(actor=people["helpdesk"], approval_id=pending.pk, approve=True)
    assert fake_cluster.commands_named("revoke") == []

    done = approval_decide(actor=people["ops1"], approval_id=pending.pk, approve=True, reason="seen")

    assert done.ok, done.message
    [(arguments, _to)] = fake_cluster.commands_named("revoke")
    assert arguments == {"task_id": [running], "terminate": True, "signal": "SIGKILL"}
    assert fake_cluster.workers[WORKER].active == []
    assert list(AuditEntry.objects.order_by("id").values_list("action", "actor_name", "outcome")) == [
        ("task.terminate", "helpdesk", "pending"),
        ("approval.approve", "helpdesk", "refused"),
        ("approval.approve", "ops1", "ok"),
        ("task.terminate", "ops1", "ok"),
    ]


# --- beat's sampler and the kept revokes -------------------------------------------------------------


def test_the_sampler_keeps_revokes_younger_than_their_retention_and_drops_only_older_ones(
    fake_cluster, settings
):
    settings.TASKOPS_REVOKE_RETENTION_HOURS = 168
    settings.TASKOPS_DEPTH_RETENTION_HOURS = 24  # a different retention: not the one for revokes
    now = timezone.now()
    ages = {"fresh": 0, "a-day-and-more": 30, "almost-a-week": 167, "over-a-week": 169, "old": 1000}
    for task_id, hours in ages.items():
        PendingRevoke.objects.create(task_id=task_id)
        PendingRevoke.objects.filter(task_id=task_id).update(requested_at=now - timedelta(hours=hours))

    cluster_sample(queue_names=["default"])

    assert sorted(PendingRevoke.objects.values_list("task_id", flat=True)) == [
        "a-day-and-more", "almost-a-week", "fresh"]
