"""Read-only mode over HTTP: every mutating form, URL and admin action changes nothing, for anyone.

Driven by test_audit_coverage.py's tables (one case per mutating URL, schedule form and admin
action; test_every_mutating_action_is_covered_here keeps them complete), on the in-memory
cluster. Each case is first shown to act when the console is writable, so a read-only refusal
is the mode's doing and not a case that could not have done anything anyway.
"""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from django_celery_beat.models import PeriodicTask
from django_celery_results.models import TaskResult

from taskops.models import (
    AuditEntry,
    PendingAction,
    PendingRevoke,
    QueuePause,
    RetryJob,
    RunRetry,
    ScheduleVersion,
)
from tests.integration.test_audit_coverage import ACTION_CASES, CASES, FORM_CASES, Case, Cluster
from tests.support.tasks import captured_meta, unique

pytestmark = pytest.mark.django_db(transaction=True)

# Audited POSTs that change nothing: revealing masked values is a read (audited because it shows
# secrets), so read-only mode leaves it alone.
NOT_MUTATIONS = {"admin:taskops_taskrun_reveal"}
EVERY_CASE: dict[str, tuple[str, Case]] = {
    **{name.split(":")[1]: (name, case) for name, case in CASES.items() if name not in NOT_MUTATIONS},
    **{name.split(":")[1]: (name, case) for name, case in FORM_CASES.items()},
    **{f"{name.split(':')[1]}:{action}": (name, case) for (name, action), case in ACTION_CASES.items()},
}
ROLES = ("superuser", "Operations")
# Withdrawing one's own approval request still works in read-only mode: the view checks only
# approval.view and approval_cancel no mutating permission. Reported; strict, so that this
# mark goes once read-only mode refuses it too.
STILL_ALLOWED: dict[str, str] = {}  # cases read-only mode does not refuse yet (a strict xfail each)


def _previewed_import(cluster: Cluster, client) -> dict:
    """The table's import input is refused by design; this one is a real preview's, so it acts."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    exported = json.loads(client.get(reverse("admin:taskops_schedule_export"), {"format": "json"}).content)
    assert len(exported) == 1, exported
    upload = SimpleUploadedFile("schedules.json", json.dumps(
        [{**exported[0], "name": unique("imported")}]).encode())
    preview = client.post(reverse("admin:taskops_schedule_import"), {"file": upload, "file_format": ""})
    assert preview.context["payload"], preview.context["plan"].problems
    return {"payload": preview.context["payload"], "reason": "read-only coverage"}


def _first_edited_retry(cluster: Cluster, client) -> dict:
    """The table's edited retry follows another retry of the run ("again"); here it is the first."""
    data = CASES["admin:taskops_taskrun_retry_edited"].data(cluster)
    return {key: value for key, value in data.items() if key not in ("again", "again_after")}


# Input that makes a case act where the table's own input is refused whatever the mode.
ACTING_INPUT = {"admin:taskops_schedule_import_confirm": _previewed_import,
                "admin:taskops_taskrun_retry_edited": _first_edited_retry}


@pytest.fixture
def cluster(fake_cluster, role_client, request) -> tuple[Cluster, object]:
    """The scene of test_audit_coverage's cluster on the in-memory one, and the role's client."""
    from demo.models import PartnerStatus
    from django.contrib.auth import get_user_model

    from taskops.schedules.definitions import definition_apply

    client = role_client(request.param)
    user = get_user_model().objects.get(pk=client.session["_auth_user_id"])
    queue, worker, spare = unique("ro"), f"{unique('w')}@fake", f"{unique('spare')}@fake"
    fake_cluster.worker_add(worker, queue, autoscale=(4, 2))
    fake_cluster.worker_add(spare, unique("spare"))
    QueuePause.objects.create(queue=queue, workers=[worker])  # so that resume has one to resume
    # A message a worker took from the queue and died holding: so that restore has one to return.
    fake_cluster.publish.console_task_send("demo.tasks.generate_report", ["stranded"], queue=queue)
    fake_cluster.message_take(queue, taken_at=timezone.now() - timedelta(minutes=5))
    PartnerStatus.objects.create(name="billing", down=False)
    failed = str(uuid.uuid4())
    TaskResult.objects.create(
        task_id=failed, task_name="demo.tasks.sync_invoices", status="FAILURE",
        content_type="application/json", meta=captured_meta(
            "demo.tasks.sync_invoices", args=[str(uuid.uuid4()), "2026-01-01T00:00:00+00:00"],
            routing_key=queue))
    job = RetryJob.objects.create(description="read-only", state="failed", created_by=user, total=1)
    schedule = definition_apply({
        "name": unique("read-only schedule"), "task": "demo.tasks.generate_report",
        "args": ["read-only"], "queue": queue, "enabled": True,
        "schedule": {"kind": "interval", "every": 5, "period": "minutes"}})
    return Cluster(queue, worker, spare, failed, job.pk, user, schedule.pk), client


def _world(fake_cluster) -> dict:
    """Everything an action could change: the cluster and the console's own records."""
    return {
        "commands": [name for name, _args, _to in fake_cluster.commands],
        "sent": len(fake_cluster.sent),
        "waiting": {q: len(m) for q, m in fake_cluster.queues.items() if m},
        "in flight": sorted(fake_cluster.unacked),
        "workers": sorted(fake_cluster.workers),
        "pauses": list(QueuePause.objects.values_list("queue", flat=True)),
        "approvals": list(PendingAction.objects.order_by("pk").values_list("pk", "state")),
        "revokes": PendingRevoke.objects.count(),
        "retries": RunRetry.objects.count(),
        "jobs": list(RetryJob.objects.order_by("pk").values_list("pk", "state", "sent")),
        "schedules": list(PeriodicTask.objects.order_by("pk").values_list(
            "pk", "name", "enabled", "args", "interval__every", "total_run_count")),
        "versions": ScheduleVersion.objects.count(),
    }


def _request(cluster_and_client, name: str, case: Case) -> tuple[str, dict]:
    """The case's URL and form for this scene (set up first: it may write rows of its own)."""
    cluster, client = cluster_and_client
    data = ACTING_INPUT[name](cluster, client) if name in ACTING_INPUT else case.data(cluster)
    return reverse(name, args=case.args(cluster)), data


def _cases(*, allowed_marked: bool):
    for role in ROLES:
        for key in sorted(EVERY_CASE):
            marks = ([pytest.mark.xfail(strict=True, reason=STILL_ALLOWED[key])]
                     if allowed_marked and key in STILL_ALLOWED else [])
            yield pytest.param(role, key, marks=marks, id=f"{role}-{key}")


@pytest.mark.parametrize("cluster, key", list(_cases(allowed_marked=False)), indirect=["cluster"])
def test_each_case_acts_when_the_console_is_writable(cluster, key, fake_cluster):
    """The other half of the proof: without read-only mode each case does something, not refused."""
    name, case = EVERY_CASE[key]
    url, data = _request(cluster, name, case)
    before = _world(fake_cluster)
    audited = set(AuditEntry.objects.values_list("pk", flat=True))

    response = cluster[1].post(url, data)

    assert response.status_code == 302, (key, response.status_code)
    entries = list(AuditEntry.objects.exclude(pk__in=audited).values_list("action", "outcome"))
    assert entries and all(outcome != "refused" for _action, outcome in entries), (key, entries)
    assert _world(fake_cluster) != before or entries, key


@pytest.mark.parametrize("cluster, key", list(_cases(allowed_marked=True)), indirect=["cluster"])
def test_read_only_mode_refuses_every_mutating_action_over_http(cluster, key, fake_cluster, settings):
    name, case = EVERY_CASE[key]
    url, data = _request(cluster, name, case)
    settings.TASKOPS_READ_ONLY = True
    before = _world(fake_cluster)
    audited = set(AuditEntry.objects.values_list("pk", flat=True))

    response = cluster[1].post(url, data)

    assert response.status_code in (200, 302, 403), (key, response.status_code)
    assert _world(fake_cluster) == before, key
    outcomes = list(AuditEntry.objects.exclude(pk__in=audited).values_list("outcome", flat=True))
    assert set(outcomes) <= {"refused"}, (key, outcomes)
