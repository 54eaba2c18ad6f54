"""Every mutating action the console offers, performed over HTTP: exactly one audit entry each, with its outcome."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from django_celery_results.models import TaskResult

from taskops.models import AuditEntry, PendingAction, RetryJob
from tests.integration.test_pages import POST_ACTIONS
from tests.support.poll import poll_until
from tests.support.tasks import send, unique

pytestmark = pytest.mark.django_db(transaction=True)


@dataclass
class Cluster:
    """What the actions act on: a queue with a worker, a spare worker, a failed run, a job."""

    queue: str
    worker: str
    spare: str
    failed_id: str
    job_id: int
    user: object
    schedule_id: int = 0


@dataclass(frozen=True)
class Case:
    """One action: its URL arguments and form, and the audit action it must record."""

    args: Callable[[Cluster], tuple]
    data: Callable[[Cluster], dict]
    audit_action: str
    status: int = 302  # back to the page, the outcome in a message


def _pending(cluster: Cluster, *, mine: bool) -> tuple:
    pending = PendingAction.objects.create(
        action="queue.purge", target=cluster.queue, params={"queue": cluster.queue},
        reason="coverage", requested_by=cluster.user if mine else None,
        requested_by_name="coverage" if mine else "someone-else",
        expires_at=timezone.now() + timedelta(hours=1))
    return (pending.pk,)


def _schedule(cluster: Cluster) -> tuple:
    """A disabled schedule of the coverage queue (no audit entry of its own)."""
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    every, _ = IntervalSchedule.objects.get_or_create(every=1, period="hours")
    task = PeriodicTask.objects.create(name=unique("coverage"), task="demo.tasks.generate_report",
                                       interval=every, args='["coverage"]', queue=cluster.queue,
                                       enabled=False)
    return (task.pk,)


def _schedule_version(cluster: Cluster) -> tuple:
    """A kept version of a schedule that has changed since (so restoring it changes something)."""
    from django_celery_beat.models import PeriodicTask

    from taskops.models import ScheduleVersion
    from taskops.schedules.definitions import definition_of

    task = PeriodicTask.objects.get(pk=_schedule(cluster)[0])
    version = ScheduleVersion.objects.create(periodic_task=task, name=task.name, actor_name="coverage",
                                             action="created", definition=definition_of(task))
    task.args = '["changed"]'
    task.save()
    return (version.pk,)


def _latest_retry(cluster: Cluster) -> str:
    from taskops.models import RunRetry

    latest = RunRetry.objects.filter(original_task_id=cluster.failed_id).order_by("-attempt").first()
    return latest.retry_task_id if latest else ""


REASON = {"reason": "audit coverage"}
CASES: dict[str, Case] = {
    "admin:taskops_queue_pause": Case(lambda c: (c.queue,), lambda c: REASON, "queue.pause"),
    "admin:taskops_queue_resume": Case(lambda c: (c.queue,), lambda c: REASON, "queue.resume"),
    "admin:taskops_queue_purge": Case(lambda c: (c.queue,), lambda c: {**REASON, "confirm": c.queue},
                                      "queue.purge"),
    # Nothing is stranded in the coverage queue: refused, and audited as such (the cross-check
    # and read-only tests return real stranded messages).
    "admin:taskops_queue_restore": Case(lambda c: (c.queue,), lambda c: REASON, "queue.restore"),
    "admin:taskops_worker_pool": Case(lambda c: (c.worker,), lambda c: {"direction": "grow", "n": 1},
                                      "worker.pool_grow"),
    "admin:taskops_worker_autoscale": Case(lambda c: (c.worker,),
                                           lambda c: {"max_processes": 3, "min_processes": 1},
                                           "worker.autoscale"),
    "admin:taskops_worker_rate_limit": Case(
        lambda c: (c.worker,), lambda c: {"task_name": "demo.tasks.generate_report", "rate": "10/m"},
        "worker.rate_limit"),
    "admin:taskops_worker_shutdown": Case(lambda c: (c.spare,),
                                          lambda c: {**REASON, "confirm": c.spare}, "worker.shutdown"),
    "admin:taskops_task_revoke": Case(lambda c: (), lambda c: {"task_id": str(uuid.uuid4())},
                                      "task.revoke"),
    "admin:taskops_taskrun_retry": Case(lambda c: (c.failed_id,), lambda c: REASON, "task.retry"),
    # The run page itself, with the hidden values shown in this response only.
    "admin:taskops_taskrun_reveal": Case(lambda c: (c.failed_id,), lambda c: REASON, "run.reveal",
                                         status=200),
    "admin:taskops_taskrun_retry_edited": Case(
        lambda c: (c.failed_id,),
        lambda c: {"args": json.dumps([str(uuid.uuid4()), "2026-01-01T00:00:00+00:00"]),
                   "kwargs": "{}", "queue": c.queue, "priority": "3", **REASON,
                   # retried by the case above: another retry only when asked, naming the last one
                   "again": "on", "again_after": _latest_retry(c)},
        "task.retry_edited"),
    "admin:taskops_taskrun_retry_matching": Case(
        lambda c: (), lambda c: {"q": c.failed_id, "expected": "1", **REASON}, "task.retry"),
    "admin:taskops_taskrun_job_resume": Case(lambda c: (c.job_id,), lambda c: REASON,
                                             "task.retry_bulk_resume"),
    "admin:taskops_task_run": Case(
        lambda c: ("demo.tasks.generate_report",),
        lambda c: {"arg_report": '"coverage"', "arg_day": "", "arg_rows": "2", "queue": c.queue,
                   **REASON},
        "task.trigger"),
    "admin:taskops_pendingaction_decide": Case(lambda c: _pending(c, mine=False),
                                               lambda c: {"decision": "reject", **REASON},
                                               "approval.reject"),
    "admin:taskops_pendingaction_cancel": Case(lambda c: _pending(c, mine=True), lambda c: {},
                                               "approval.cancel"),
    "admin:taskops_schedule_import_confirm": Case(lambda c: (),
                                                  lambda c: {"payload": "not a preview", **REASON},
                                                  "schedule.import"),
    "admin:taskops_schedule_restore": Case(_schedule_version, lambda c: REASON, "schedule.restore"),
    "admin:taskops_schedule_run": Case(_schedule, lambda c: REASON, "schedule.run"),
    "admin:taskops_schedule_clone": Case(_schedule, lambda c: REASON, "schedule.clone"),
}


def _schedule_form(c: Cluster, name: str) -> dict:
    return {"name": name, "task": "demo.tasks.generate_report", "kind": "interval", "every": "5",
            "period": "minutes", "timezone": "UTC", "args": '["coverage"]', "kwargs": "{}",
            "queue": c.queue, "headers": "{}", "enabled": "on", **REASON}


def _schedule_edit(c: Cluster) -> dict:
    from django_celery_beat.models import PeriodicTask

    from taskops.schedules.definitions import definition_of
    from taskops.selectors.schedules import definition_fingerprint

    task = PeriodicTask.objects.get(pk=c.schedule_id)
    return {**_schedule_form(c, task.name), "every": "7",
            "based_on": definition_fingerprint(definition_of(task))}


# The schedule editor's own forms (Django's URL names): created, edited, deleted.
FORM_CASES: dict[str, Case] = {
    "admin:django_celery_beat_periodictask_add": Case(
        lambda c: (), lambda c: _schedule_form(c, "coverage new"), "schedule.create"),
    "admin:django_celery_beat_periodictask_change": Case(
        lambda c: (c.schedule_id,), _schedule_edit, "schedule.edit"),
    "admin:django_celery_beat_periodictask_delete": Case(
        lambda c: (c.schedule_id,), lambda c: REASON, "schedule.delete"),
}


def _admin_action(action: str, selected: Callable[[Cluster], object]) -> Callable[[Cluster], dict]:
    return lambda c: {"action": action, "_selected_action": [selected(c)], "index": "0", **REASON}


def _run_pk(c: Cluster) -> int:
    return TaskResult.objects.get(task_id=c.failed_id).pk


# Admin actions on the lists: (changelist, action) -> the case.
ACTION_CASES: dict[tuple[str, str], Case] = {
    ("admin:taskops_taskrun_changelist", "retry_selected"): Case(
        lambda c: (), _admin_action("retry_selected", _run_pk), "task.retry"),
    **{("admin:django_celery_beat_periodictask_changelist", f"{verb}_selected"): Case(
        lambda c: (), _admin_action(f"{verb}_selected", lambda c: c.schedule_id), f"schedule.{verb}")
       for verb in ("disable", "enable", "run", "clone")},
}


def test_every_mutating_action_is_covered_here():
    from tests.integration.test_pages import ADMIN_ACTIONS, SCHEDULE_FORMS

    assert set(CASES) == {name for name, _ in POST_ACTIONS}
    assert set(FORM_CASES) == {name for name, _ in SCHEDULE_FORMS
                               if name.endswith(("_add", "_change", "_delete"))}
    assert set(ACTION_CASES) == set(ADMIN_ACTIONS)


@pytest.fixture
def cluster(start_worker, django_user_model, client):
    from demo.models import PartnerStatus

    queue = unique("audit")
    worker = start_worker(queue)
    spare = start_worker(unique("spare"))
    PartnerStatus.objects.create(name="billing", down=True)
    sent = send("demo.tasks.sync_invoices", args=[str(uuid.uuid4()), "2026-01-01T00:00:00+00:00"],
                queue=queue)
    poll_until(lambda: TaskResult.objects.filter(task_id=sent.id, status="FAILURE").exists(),
               timeout=30, message="the run to retry fails")
    PartnerStatus.objects.filter(name="billing").update(down=False)
    user = django_user_model.objects.create_superuser("coverage", password="x")
    client.force_login(user)
    job = RetryJob.objects.create(description="coverage", state="done", created_by=user)
    from taskops.schedules.definitions import definition_apply

    schedule = definition_apply({
        "name": "coverage schedule", "task": "demo.tasks.generate_report", "args": ["coverage"],
        "queue": queue, "enabled": True,
        "schedule": {"kind": "interval", "every": 5, "period": "minutes"}})
    return Cluster(queue, worker.name, spare.name, sent.id, job.pk, user, schedule.pk)


@pytest.mark.smoke
def test_each_mutating_action_writes_exactly_one_audit_entry_with_its_outcome(client, cluster):
    every_case = [*CASES.items(), *ACTION_CASES.items(), *FORM_CASES.items()]
    for key, case in every_case:
        name = key[0] if isinstance(key, tuple) else key
        before = set(AuditEntry.objects.values_list("pk", flat=True))

        response = client.post(reverse(name, args=case.args(cluster)), case.data(cluster))

        assert response.status_code == case.status, (name, response.status_code)
        new = list(AuditEntry.objects.exclude(pk__in=before))
        assert len(new) == 1, (name, [(e.action, e.outcome, e.message) for e in new])
        entry = new[0]
        assert entry.action == case.audit_action, (name, entry.action)
        assert entry.outcome in dict(AuditEntry.Outcome.choices), (name, entry.outcome)
        assert entry.actor_name == "coverage" and entry.source_ip == "127.0.0.1", name
