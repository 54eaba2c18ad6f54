"""Secrets stay secret: what the sender masked and values under masked keys, on every page, search, export and audit entry, until revealed."""

from __future__ import annotations

import hashlib
import io
import json
import uuid
from datetime import datetime, timezone

import pytest
from django.core.management import call_command
from django.urls import reverse
from django_celery_results.models import TaskResult
from kombu.utils.json import dumps

from taskops.capture import CALL_KEY, CAPTURE_VERSION, call_from_meta
from taskops.masking import MASK
from taskops.models import AuditEntry, RunRetry
from taskops.selectors import run_detail
from tests.support.poll import poll_until
from tests.support.secret_tasks import INCLUDE, SIGN_IN, digest
from tests.support.tasks import send, unique

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.db_engine]

CARD = "4111 1111 1111 1111"
PASSWORD = "hunter2-correct-horse"
API_KEY = "sk-live-5f3a9c"
LIST = "admin:taskops_taskrun_changelist"


def run_url(task_id: str) -> str:
    return reverse("admin:taskops_taskrun_detail", args=[task_id])


def finished(task_id: str) -> TaskResult | None:
    return TaskResult.objects.filter(task_id=task_id, status__in=("SUCCESS", "FAILURE")).first()


def text(response) -> str:
    return response.content.decode()


def found_by_search(client, term: str, task_id: str) -> bool:
    return task_id in text(client.get(reverse(LIST), {"q": term}))


def audit_export(client, fmt_index: str) -> str:
    fields = ["id", "created_at", "actor_name", "source_ip", "action", "target", "params",
              "reason", "outcome", "message", "detail"]
    return client.post(reverse("admin:taskops_auditentry_export"), {
        "format": fmt_index, "resource": "0",
        **{f"auditentryresource_{f}": "on" for f in fields}}).content.decode()


@pytest.fixture
def partner_down():
    from demo.models import PartnerStatus

    status = PartnerStatus.objects.create(name="billing", down=True)
    yield status
    PartnerStatus.objects.all().delete()


def test_what_the_sender_masked_is_never_shown_and_a_retry_still_sends_it(
    role_client, start_worker, partner_down
):
    queue = unique("masked")
    start_worker(queue)
    account = uuid.uuid4()
    sent = send("demo.tasks.sync_invoices", args=[account, datetime(2026, 1, 5, tzinfo=timezone.utc)],
                kwargs={"note": CARD}, queue=queue, kwargsrepr="{'note': '<card>'}")
    failed = poll_until(lambda: finished(sent.id), timeout=30, message="the original fails")

    for role in ("Managers", "Support"):
        client = role_client(role)
        page = text(client.get(run_url(sent.id)))
        assert CARD not in page and "4111" not in page, role
        assert "{&#x27;note&#x27;: &#x27;&lt;card&gt;&#x27;}" in page, role  # as the sender shows it
        assert str(account) in page, role  # the arguments it did not mask
        assert not found_by_search(client, "4111", sent.id), role
        assert found_by_search(client, str(account)[:13], sent.id), role
    assert f"{{&quot;note&quot;: &quot;{MASK}&quot;}}" in page  # Support's edit form: a placeholder
    captured = call_from_meta(failed.meta)
    assert captured.kwargs == {"note": CARD}  # the faithful capture keeps it for replay
    assert captured.sender_masked == {"kwargs"}

    detail = run_detail(sent.id)
    partner_down.down = False
    partner_down.save()
    response = client.post(reverse("admin:taskops_taskrun_retry_edited", args=[sent.id]), {
        "args": detail.edit_args, "kwargs": detail.edit_kwargs, "queue": queue, "priority": "",
        "reason": "partner is back"})

    assert response.status_code == 302
    link = RunRetry.objects.get(original_task_id=sent.id, edited=True)
    retried = poll_until(lambda: finished(link.retry_task_id), timeout=30, message="the retry runs")
    assert retried.status == "SUCCESS", retried.traceback
    assert json.loads(retried.result)["note_sha256"] == hashlib.sha256(CARD.encode()).hexdigest()
    assert call_from_meta(retried.meta).sender_masked == {"kwargs"}
    assert CARD not in text(role_client("Managers").get(run_url(link.retry_task_id)))
    entry = AuditEntry.objects.get(action="task.retry_edited")
    assert CARD not in json.dumps(entry.params) and entry.params["kwargs"] == {"note": MASK}


def test_values_under_masked_keys_are_hidden_everywhere_until_revealed_and_retried_as_they_were(
    role_client, start_worker, partner_down
):
    queue = unique("keys")
    worker = start_worker(queue, extra_args=INCLUDE)
    account = unique("acct")
    sent = send(SIGN_IN, args=[account], queue=queue, kwargs={
        "credentials": {"user": "ann", "password": PASSWORD},
        "options": {"api_key": API_KEY, "region": "eu-west-9"}})
    failed = poll_until(lambda: finished(sent.id), timeout=30, message="the original fails")
    secrets = (PASSWORD, API_KEY)

    assert not any(s in (failed.task_kwargs or "") for s in secrets)  # what search reads
    managers = role_client("Managers")
    page = text(managers.get(run_url(sent.id)))
    assert not any(s in page for s in secrets)
    assert MASK in page and "eu-west-9" in page and "ann" in page
    assert 'data-run-reveal' not in page  # no group may reveal by default
    for term in secrets:
        assert not found_by_search(managers, term, sent.id)
    for term in (account, "eu-west-9"):  # unmasked values, nested in keyword arguments too
        assert found_by_search(managers, term, sent.id)
    # role_client logs the one test client in as a new user of that role.
    superuser = role_client("superuser")
    metrics = text(superuser.get(reverse("taskops:metrics")))
    assert not any(s in metrics for s in (*secrets, "eu-west-9", account))  # no argument values

    # Reveal: a POST with a reason, shown in that response only, audited.
    assert 'data-run-reveal' in text(superuser.get(run_url(sent.id)))
    reveal = reverse("admin:taskops_taskrun_reveal", args=[sent.id])
    assert superuser.get(reveal).status_code == 405
    refused = superuser.post(reveal, {"reason": ""})
    assert refused.status_code == 302 and AuditEntry.objects.get(action="run.reveal").outcome == "refused"
    revealed = superuser.post(reveal, {"reason": "customer says the password is wrong"})
    assert revealed.status_code == 200 and "no-store" in revealed["Cache-Control"]
    assert all(s in text(revealed) for s in secrets) and "data-run-revealed" in text(revealed)
    assert f'name="next" value="{run_url(sent.id)}"' in text(revealed)  # its forms lead back here
    entry = AuditEntry.objects.filter(action="run.reveal", outcome="ok").get()
    assert (entry.target, entry.reason, entry.actor_name) == (
        sent.id, "customer says the password is wrong", revealed.wsgi_request.user.username)
    assert not any(s in text(superuser.get(run_url(sent.id))) for s in secrets)
    assert role_client("Support").post(reveal, {"reason": "curious"}).status_code == 403

    # Retry as it was, and with one value edited: the task receives the real secrets.
    partner_down.down = False
    partner_down.save()
    support = role_client("Support")
    assert support.post(reverse("admin:taskops_taskrun_retry", args=[sent.id]),
                        {"reason": "partner is back"}).status_code == 302
    detail = run_detail(sent.id)
    assert MASK in detail.edit_kwargs and not any(s in detail.edit_kwargs for s in secrets)
    first = RunRetry.objects.get(original_task_id=sent.id).retry_task_id
    edited = support.post(reverse("admin:taskops_taskrun_retry_edited", args=[sent.id]), {
        "args": detail.edit_args, "kwargs": detail.edit_kwargs.replace("eu-west-9", "eu-west-1"),
        "queue": queue, "priority": "", "reason": "moved region",
        "again": "on", "again_after": first})  # retried already: another retry, knowingly
    assert edited.status_code == 302
    assert RunRetry.objects.filter(original_task_id=sent.id).count() == 2
    for link in RunRetry.objects.filter(original_task_id=sent.id):
        retried = poll_until(lambda: finished(link.retry_task_id), timeout=30, message="retry runs")
        received = json.loads(retried.result)
        assert received["digests"] == [digest(PASSWORD), digest(API_KEY)], retried.traceback
        assert received["region"] == ("eu-west-1" if link.edited else "eu-west-9")
        assert not any(s in text(role_client("Managers").get(run_url(link.retry_task_id)))
                       for s in secrets)

    # Audit entries and their exports keep the masked values only (an entry written before
    # masking existed is masked when exported).
    AuditEntry.objects.create(actor_name="legacy", action="task.retry_edited", outcome="ok",
                              params={"kwargs": {"credentials": {"password": PASSWORD}}})
    assert not any(s in json.dumps(e.params) for e in AuditEntry.objects.exclude(actor_name="legacy")
                   for s in secrets)
    superuser = role_client("superuser")
    for fmt_index in ("0", "2"):  # CSV, JSON
        exported = audit_export(superuser, fmt_index)
        assert "task.retry_edited" in exported and "legacy" in exported
        assert not any(s in exported for s in secrets)
    legacy = AuditEntry.objects.get(actor_name="legacy")
    change = text(superuser.get(reverse("admin:taskops_auditentry_change", args=[legacy.pk])))
    assert PASSWORD not in change and MASK in change
    assert worker.process.poll() is None


def test_a_queued_message_shows_its_arguments_masked(role_client, isolated_broker):
    queue = unique("waiting")
    send(SIGN_IN, args=["acct-1"], queue=queue,
         kwargs={"credentials": {"password": PASSWORD}, "options": {"region": "eu-west-9"}})
    send("demo.tasks.sync_invoices", args=["a", "b"], kwargs={"note": CARD}, queue=queue,
         kwargsrepr="{'note': '<card>'}")

    page = text(role_client("Operations").get(reverse("admin:taskops_queue_detail", args=[queue])))

    assert "eu-west-9" in page and MASK in page and "&lt;card&gt;" in page
    assert PASSWORD not in page and CARD not in page


def _legacy_run(task_id: str, *, args: list, kwargs: dict, task_args: str, task_kwargs: str) -> None:
    """A run captured before masking: no record of what the sender masked, reprs unmasked."""
    meta = dumps({CALL_KEY: {"v": CAPTURE_VERSION, "task": "demo.tasks.flaky_call", "args": args,
                             "kwargs": kwargs, "routing_key": "default"}})
    TaskResult.objects.create(task_id=task_id, task_name="demo.tasks.flaky_call", status="FAILURE",
                              meta=meta)
    # As stored before masking: written around the results write that masks them now.
    TaskResult.objects.filter(task_id=task_id).update(task_args=json.dumps(task_args),
                                                      task_kwargs=json.dumps(task_kwargs))


def test_runs_stored_before_masking_are_shown_masked_and_hidden_from_search_once_masked(
    role_client, isolated_broker
):
    _legacy_run("legacy-keys", args=["https://partner"], kwargs={"token": PASSWORD, "customer": "c-9"},
                task_args="['https://partner']", task_kwargs=f"{{'token': '{PASSWORD}', 'customer': 'c-9'}}")
    _legacy_run("legacy-sender", args=[CARD], kwargs={}, task_args="['****']", task_kwargs="{}")
    client = role_client("Managers")

    keys_page, sender_page = (text(client.get(run_url(t))) for t in ("legacy-keys", "legacy-sender"))
    assert PASSWORD not in keys_page and "c-9" in keys_page and "https://partner" in keys_page
    assert CARD not in sender_page and "[&#x27;****&#x27;]" in sender_page  # told from the stored repr
    assert run_detail("legacy-sender").edit_args == f'["{MASK}"]'

    assert found_by_search(client, PASSWORD, "legacy-keys")  # until the stored reprs are masked
    call_command("taskops_mask_stored", "--batch", "1", stdout=io.StringIO())
    assert not found_by_search(client, PASSWORD, "legacy-keys")
    assert found_by_search(client, "c-9", "legacy-keys")
    assert not found_by_search(client, CARD, "legacy-sender")


def test_a_run_written_with_masked_keys_in_its_reprs_is_stored_masked():
    TaskResult.objects.create(task_id="written", status="REVOKED",
                              task_kwargs=json.dumps(f"{{'api_key': '{API_KEY}', 'n': 1}}"))

    stored = TaskResult.objects.get(task_id="written").task_kwargs
    assert API_KEY not in stored and json.loads(stored) == f"{{'api_key': '{MASK}', 'n': 1}}"


def test_a_running_task_shows_its_arguments_as_its_sender_did_masked_by_key(role_client, start_worker):
    queue = unique("running")
    worker = start_worker(queue, extra_args=INCLUDE)
    sent = send(SIGN_IN, args=["acct-running"], queue=queue, kwargs={
        "credentials": {"password": PASSWORD}, "hold": 4})
    client = role_client("Operations")
    url = reverse("admin:taskops_worker_detail", args=[worker.name])

    def listed() -> str | None:
        page = text(client.get(url))
        return page if sent.id in page else None

    page = poll_until(listed, timeout=15, message="the worker page lists the running task")

    assert "acct-running" in page and MASK in page and PASSWORD not in page


def test_celerys_own_retries_keep_what_the_sender_masked(start_worker):
    queue = unique("autoretry")
    start_worker(queue)
    # flaky_call retries itself twice (autoretry_for), each time with a message Celery builds.
    sent = send("demo.tasks.flaky_call", args=[CARD], kwargs={"fail_rate": 1.0, "customer_id": 7},
                queue=queue, argsrepr="['<card>']")

    failed = poll_until(lambda: finished(sent.id), timeout=40, message="the last attempt fails")

    assert "attempt 3 of 3" in failed.traceback
    assert json.loads(failed.task_args) == "['<card>']"
    assert call_from_meta(failed.meta).sender_masked == {"args"}
    assert CARD not in run_detail(failed.task_id).args_text
