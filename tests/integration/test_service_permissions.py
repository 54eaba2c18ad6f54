"""Every service that acts checks the person's permission itself (not only the view), and audits the refusal."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, Permission
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from taskops import services
from taskops.capture import CapturedCall
from taskops.models import AuditEntry, PendingAction, QueuePause
from taskops.selectors.reports import ReportDefinition, RunFilters
from taskops.services import ActionRefused, Actor
from taskops.services.reports import report_export

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.db_engine]


def _schedule() -> PeriodicTask:
    every = IntervalSchedule.objects.create(every=1, period=IntervalSchedule.HOURS)
    return PeriodicTask.objects.create(name="permissions check", task="demo.tasks.generate_report",
                                       interval=every)


def _pending(requested_by=None) -> PendingAction:
    return PendingAction.objects.create(
        action="queue.purge", target="default", params={"queue": "default"}, reason="bad deploy",
        requested_by=requested_by,
        requested_by_name=requested_by.username if requested_by else "someone",
        expires_at=timezone.now() + timedelta(hours=1))


REPORT = ReportDefinition(slug="r", title="Reports", patterns=("demo.tasks.generate_report",))
CALL = CapturedCall(task="demo.tasks.generate_report", args=["x"], kwargs={}, routing_key="default")

# Every service that acts for a person: how to call it. Mutating ones are also refused in
# read-only mode, whoever asks.
MUTATING: dict[str, Callable[[Actor], object]] = {
    "queue_pause": lambda a: services.queue_pause(actor=a, queue="default", reason="r"),
    "queue_resume": lambda a: services.queue_resume(actor=a, queue="default", reason="r"),
    "queue_purge": lambda a: services.queue_purge(actor=a, queue="default", confirm="default",
                                                  reason="reason"),
    "queue_stranded_restore": lambda a: services.queue_stranded_restore(actor=a, queue="default",
                                                                        reason="reason"),
    "worker_pool_resize": lambda a: services.worker_pool_resize(actor=a, worker="w@h", delta=1),
    "worker_autoscale": lambda a: services.worker_autoscale(actor=a, worker="w@h", max_processes=2,
                                                            min_processes=1),
    "worker_rate_limit": lambda a: services.worker_rate_limit(actor=a, worker="w@h",
                                                              task_name="t", rate="1/s"),
    "worker_shutdown": lambda a: services.worker_shutdown(actor=a, worker="w@h", confirm="w@h",
                                                          reason="reason"),
    "task_revoke": lambda a: services.task_revoke(actor=a, task_ids=["some-id"]),
    "task_retry": lambda a: services.task_retry(actor=a, task_ids=["some-id"]),
    "task_retry_edited": lambda a: services.task_retry_edited(actor=a, task_id="some-id", call=CALL),
    "task_send": lambda a: services.task_send(actor=a, name=CALL.task, args=["x"], kwargs={},
                                              queue="default"),
    "retry_job_create": lambda a: services.retry_job_create(actor=a, task_ids=["some-id"],
                                                            description="d"),
    "retry_job_resume": lambda a: services.retry_job_resume(actor=a, job_id=1),
    "schedule_save": lambda a: services.schedule_save(actor=a, reason="r", definition={"name": "n"}),
    "schedule_enable": lambda a: services.schedule_enable(actor=a, task_ids=[_schedule().pk],
                                                          enabled=False, reason="r"),
    "schedule_clone": lambda a: services.schedule_clone(actor=a, task_ids=[_schedule().pk], reason="r"),
    "schedule_delete": lambda a: services.schedule_delete(actor=a, task=_schedule(), reason="r"),
    "schedule_restore": lambda a: services.schedule_restore(actor=a, version_id=1, reason="r"),
    "schedule_run_now": lambda a: services.schedule_run_now(actor=a, task_ids=[_schedule().pk]),
    "schedule_import": lambda a: services.schedule_import(actor=a, payload="x", reason="r"),
}
READING: dict[str, Callable[[Actor], object]] = {
    "schedule_export": lambda a: services.schedule_export(actor=a, file_format="json"),
    "report_export": lambda a: report_export(actor=a, report=REPORT, filters=RunFilters(), fmt="csv"),
    "run_reveal": lambda a: services.run_reveal(actor=a, task_id="some-id", reason="customer asks"),
}
DECISIONS: dict[str, Callable[[Actor], object]] = {
    "approval_decide": lambda a: services.approval_decide(actor=a, approval_id=_pending().pk,
                                                          approve=True),
    "approval_cancel": lambda a: services.approval_cancel(actor=a, approval_id=_pending().pk),
}


def test_the_tables_cover_every_service_that_acts_for_someone():
    acting = {name for name in services.__all__
              if callable(getattr(services, name)) and not inspect.isclass(getattr(services, name))
              and "actor" in inspect.signature(getattr(services, name)).parameters}

    assert acting <= set(MUTATING) | set(READING) | set(DECISIONS), acting - set(MUTATING) - set(
        READING) - set(DECISIONS)


@pytest.fixture
def nobody(django_user_model) -> Actor:
    """A staff member with no permission at all."""
    return Actor(django_user_model.objects.create_user("nobody", password="x", is_staff=True), "10.1.1.1")


@pytest.mark.parametrize("name", sorted({**MUTATING, **READING}))
def test_a_service_refuses_someone_without_the_permission_and_audits_it(name, nobody):
    QueuePause.objects.create(queue="default")  # so resume has something to resume
    with pytest.raises(ActionRefused, match="may not"):
        {**MUTATING, **READING}[name](nobody)

    entry = AuditEntry.objects.get()
    assert (entry.outcome, entry.actor_name, entry.source_ip) == ("refused", "nobody", "10.1.1.1")


@pytest.mark.parametrize("name", sorted(DECISIONS))
def test_deciding_on_a_request_needs_its_action_permission(name, nobody):
    with pytest.raises(ActionRefused):
        DECISIONS[name](nobody)

    assert AuditEntry.objects.get().outcome == "refused"
    assert PendingAction.objects.get().state == "pending"


@pytest.mark.parametrize("name", sorted(MUTATING))
def test_read_only_mode_refuses_every_mutating_service_even_to_a_superuser(
    name, django_user_model, settings
):
    settings.TASKOPS_READ_ONLY = True
    boss = Actor(django_user_model.objects.create_superuser("boss", password="x"))

    with pytest.raises(ActionRefused, match="read-only"):
        MUTATING[name](boss)

    assert AuditEntry.objects.get().outcome == "refused"


def test_terminate_needs_its_own_permission_whatever_the_form_said(django_user_model):
    revoker = django_user_model.objects.create_user("revoker", password="x", is_staff=True)
    revoker.user_permissions.add(Permission.objects.get(codename="revoke_task"))
    revoker = django_user_model.objects.get(pk=revoker.pk)

    with pytest.raises(ActionRefused, match="may not task terminate"):
        services.task_revoke(actor=Actor(revoker), task_ids=["running-id"], terminate=True,
                             reason="stuck for hours")

    entry = AuditEntry.objects.get()
    assert (entry.action, entry.outcome) == ("task.terminate", "refused")


def test_retry_with_edited_arguments_needs_the_trigger_permission_too(django_user_model):
    retrier = django_user_model.objects.create_user("retrier", password="x", is_staff=True)
    retrier.user_permissions.add(Permission.objects.get(codename="retry_task"))
    retrier = django_user_model.objects.get(pk=retrier.pk)

    with pytest.raises(ActionRefused, match="may not task trigger"):
        services.task_retry_edited(actor=Actor(retrier), task_id="some-id", call=CALL)

    assert AuditEntry.objects.get().action == "task.retry_edited"


def test_an_approval_is_not_carried_out_once_the_requester_lost_the_permission(
    django_user_model, isolated_broker
):
    ops = Group.objects.get(name="Operations")
    asker = django_user_model.objects.create_user("asker", password="x", is_staff=True)
    approver = django_user_model.objects.create_user("approver", password="x", is_staff=True)
    asker.groups.add(ops)
    approver.groups.add(ops)
    pending = _pending(requested_by=asker)
    asker.groups.remove(ops)  # moved to another team meanwhile

    with pytest.raises(ActionRefused, match="asker may no longer do this action"):
        services.approval_decide(actor=Actor(django_user_model.objects.get(pk=approver.pk)),
                                 approval_id=pending.pk, approve=True)

    pending.refresh_from_db()
    assert pending.state == "pending"
    assert list(AuditEntry.objects.values_list("action", "outcome")) == [("approval.approve", "refused")]
