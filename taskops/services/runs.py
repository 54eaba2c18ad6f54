"""Writes on task runs: faithful retry of one or many runs, with edits, and resumable bulk retry jobs."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django_celery_results.models import TaskResult

from taskops.capture import RETRY_OF_HEADER, CapturedCall, NoCapture, call_from_meta
from taskops.conf import celery_app
from taskops.connection import BrokerUnavailable, broker_connection
from taskops.models import AuditEntry, RetryJob, RetryJobItem, RunRetry
from taskops.services.base import ActionOutcome, Actor, audit_record, unavailable

log = logging.getLogger(__name__)

# Runs that have finished; a queued or running run is revoked, not retried.
RETRYABLE_STATES = ("FAILURE", "REVOKED", "SUCCESS")
JOB_TASK = "taskops.retry_job_run"


def _setting(name: str, default: float) -> float:
    return float(getattr(settings, name, default))


class RetryJobBusy(Exception):
    """Another runner holds the job's lease (it may be alive, or its lease not yet expired)."""


@dataclass(frozen=True)
class RetryPlan:
    """One run to retry: its captured call, or why it cannot be retried faithfully."""

    task_id: str
    call: CapturedCall | None
    refusal: str = ""


def retry_plans(task_ids: list[str]) -> dict[str, RetryPlan]:
    """Decide, for each run, whether it can be retried with its captured call (one query)."""
    rows = {
        task_id: (status, meta)
        for task_id, status, meta in TaskResult.objects.filter(task_id__in=task_ids).values_list(
            "task_id", "status", "meta"
        )
    }
    plans = {}
    for task_id in task_ids:
        if task_id not in rows:
            plans[task_id] = RetryPlan(task_id, None, "no such run in the results")
            continue
        status, meta = rows[task_id]
        if status not in RETRYABLE_STATES:
            plans[task_id] = RetryPlan(task_id, None, f"the run is {status.lower()}: retry it once "
                                                      "it has finished, or revoke it")
            continue
        call = call_from_meta(meta)
        plans[task_id] = (
            RetryPlan(task_id, None, call.reason) if isinstance(call, NoCapture)
            else RetryPlan(task_id, call)
        )
    return plans


def calls_publish(sends: list[tuple[str, CapturedCall, str | None]], **options) -> None:
    """Send (task id, call, original id) triples with send_task, routed as each call says.

    The one send path of the console: retries (original id set: a retry-of header links them)
    and new runs from the catalog (original None; `options` such as countdown, eta, expires).
    One short-timeout connection, one kombu publish batch (a Redis pipeline per 1000 messages).
    Raises BrokerUnavailable.
    """
    if not sends:
        return
    app = celery_app()
    with broker_connection() as conn:
        producer = app.amqp.Producer(conn)
        with producer.batch(max_size=1000):
            for retry_id, call, original_id in sends:
                app.send_task(
                    call.task,
                    args=call.args,
                    kwargs=call.kwargs,
                    task_id=retry_id,
                    queue=call.routing_key or None,
                    # A captured exchange comes with its routing key; a queue alone routes by
                    # that queue's own declaration.
                    exchange=call.exchange or None,
                    routing_key=(call.routing_key or None) if call.exchange else None,
                    priority=call.priority,
                    time_limit=call.time_limit,
                    soft_time_limit=call.soft_time_limit,
                    headers={**call.headers, **({RETRY_OF_HEADER: original_id} if original_id else {})},
                    producer=producer,
                    add_to_parent=False,
                    **options,
                )


def _refusal_text(refused: dict[str, str]) -> str:
    shown = "; ".join(f"{task_id}: {why}" for task_id, why in list(refused.items())[:5])
    more = f" (and {len(refused) - 5} more)" if len(refused) > 5 else ""
    return f"Not retried: {shown}{more}."


def task_retry(*, actor: Actor, task_ids: list[str], reason: str = "") -> ActionOutcome:
    """Retry finished runs now, each with its captured call on its original queue and priority."""
    task_ids = list(dict.fromkeys(t.strip() for t in task_ids if t and t.strip()))
    plans = retry_plans(task_ids)
    refused = {p.task_id: p.refusal for p in plans.values() if p.call is None}
    sends = [(str(uuid.uuid4()), p.call, p.task_id) for p in plans.values() if p.call is not None]
    params = {"task_ids": task_ids}
    target = task_ids[0] if len(task_ids) == 1 else f"{len(task_ids)} runs"
    detail = {"refused": refused}
    if not sends:
        return audit_record(actor, "task.retry", target, params, reason, ActionOutcome(
            AuditEntry.Outcome.REFUSED, _refusal_text(refused), detail))
    try:
        calls_publish(sends)
    except BrokerUnavailable as exc:
        return audit_record(actor, "task.retry", target, params, reason, unavailable(exc, "Retry"))
    RunRetry.objects.bulk_create(
        RunRetry(original_task_id=original, retry_task_id=retry_id, task_name=call.task,
                 requested_by=actor.db_user)
        for retry_id, call, original in sends
    )
    detail["retries"] = {original: retry_id for retry_id, _call, original in sends}
    message = (f"Retried {len(sends)} run{'s' if len(sends) != 1 else ''} with the original "
               f"arguments and routing: " + ", ".join(
                   f"{original} → {retry_id}" for retry_id, _c, original in sends[:5])
               + (" …" if len(sends) > 5 else "") + ".")
    if refused:
        message += " " + _refusal_text(refused)
    outcome = AuditEntry.Outcome.PARTIAL if refused else AuditEntry.Outcome.OK
    return audit_record(actor, "task.retry", target, params, reason,
                        ActionOutcome(outcome, message, detail))


def task_retry_edited(
    *, actor: Actor, task_id: str, call: CapturedCall, reason: str = ""
) -> ActionOutcome:
    """Send a run again with arguments or routing edited by the user (validated by the form)."""
    retry_id = str(uuid.uuid4())
    params = {"task_id": task_id, "task": call.task, "args": call.args, "kwargs": call.kwargs,
              "queue": call.routing_key, "priority": call.priority}
    try:
        calls_publish([(retry_id, call, task_id)])
    except BrokerUnavailable as exc:
        return audit_record(actor, "task.retry_edited", task_id, _jsonable(params), reason,
                            unavailable(exc, "Retry"))
    RunRetry.objects.create(original_task_id=task_id, retry_task_id=retry_id, task_name=call.task,
                            requested_by=actor.db_user, edited=True)
    return audit_record(actor, "task.retry_edited", task_id, _jsonable(params), reason, ActionOutcome(
        AuditEntry.Outcome.OK, f"Sent {call.task} again with edited arguments as {retry_id}.",
        {"retry": retry_id}))


def _jsonable(value):
    """Arguments as the audit log keeps them (JSON with datetimes and UUIDs as strings)."""
    from kombu.utils.json import dumps, loads

    return loads(dumps(value), object_hook=None)


# --- Bulk retry jobs --------------------------------------------------------------------------------


def _chunks(values: Iterable[str], size: int) -> Iterator[list[str]]:
    chunk: list[str] = []
    for value in values:
        chunk.append(value)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def retry_job_create(
    *, actor: Actor, task_ids: Iterable[str], description: str, reason: str = ""
) -> RetryJob:
    """Record a bulk retry of `task_ids` (any number, streamed) and start it after commit."""
    with transaction.atomic():
        job = RetryJob.objects.create(created_by=actor.db_user, description=description[:500],
                                      reason=reason)
        total = 0
        for chunk in _chunks(task_ids, 5000):
            created = RetryJobItem.objects.bulk_create(
                [RetryJobItem(job=job, task_id=task_id) for task_id in dict.fromkeys(chunk)],
                ignore_conflicts=True,
            )
            total += len(created)
        job.total = job.items.count() if total else 0
        job.save(update_fields=["total"])
        audit_record(actor, "task.retry_bulk", f"job {job.pk}", {"job": job.pk, "runs": job.total},
                     reason, ActionOutcome(AuditEntry.Outcome.OK,
                                           f"Bulk retry job {job.pk} of {job.total} runs started.",
                                           {"job": job.pk}))
        transaction.on_commit(lambda: retry_job_start(job.pk))
    return job


def retry_job_start(job_id: int) -> None:
    """Queue the console's job task for `job_id` (on TASKOPS_QUEUE)."""
    app = celery_app()
    with broker_connection() as conn:
        app.send_task(JOB_TASK, args=[job_id], queue=getattr(settings, "TASKOPS_QUEUE", "default"),
                      connection=conn, add_to_parent=False)


def retry_job_resume(*, actor: Actor, job_id: int, reason: str = "") -> ActionOutcome:
    """Start a job again after its runner died; it continues where it stopped, sending nothing twice."""
    job = RetryJob.objects.get(pk=job_id)
    if job.state == RetryJob.State.DONE:
        return audit_record(actor, "task.retry_bulk_resume", f"job {job_id}", {"job": job_id}, reason,
                            ActionOutcome(AuditEntry.Outcome.REFUSED, f"Job {job_id} is already done."))
    try:
        retry_job_start(job_id)
    except BrokerUnavailable as exc:
        return audit_record(actor, "task.retry_bulk_resume", f"job {job_id}", {"job": job_id},
                            reason, unavailable(exc, "Resume"))
    return audit_record(actor, "task.retry_bulk_resume", f"job {job_id}", {"job": job_id}, reason,
                        ActionOutcome(AuditEntry.Outcome.OK,
                                      f"Job {job_id} resumed: {job.remaining} runs to go."))


def _lease(job_id: int, owner: str) -> bool:
    """Take or renew the job's lease; False when another live runner holds it."""
    now = timezone.now()
    until = now + timedelta(seconds=_setting("TASKOPS_RETRY_LEASE_SECONDS", 60))
    taken = RetryJob.objects.filter(pk=job_id).exclude(state=RetryJob.State.DONE).filter(
        lease_owner__in=["", owner]
    ).update(lease_owner=owner, lease_until=until)
    if not taken:
        taken = RetryJob.objects.filter(pk=job_id, lease_until__lt=now).exclude(
            state=RetryJob.State.DONE).update(lease_owner=owner, lease_until=until)
    return bool(taken)


def _confirm_sent(job: RetryJob, items: list[RetryJobItem], plans: dict[str, RetryPlan],
                  user) -> None:
    with transaction.atomic():
        RetryJobItem.objects.filter(pk__in=[i.pk for i in items], state=RetryJobItem.State.CLAIMED
                                    ).update(state=RetryJobItem.State.SENT)
        RunRetry.objects.bulk_create(
            [RunRetry(original_task_id=i.task_id, retry_task_id=i.retry_task_id,
                      task_name=plans[i.task_id].call.task if i.task_id in plans else "",
                      requested_by=user, job=job) for i in items],
            ignore_conflicts=True,
        )
        RetryJob.objects.filter(pk=job.pk).update(sent=F("sent") + len(items))


def retry_job_claim(job: RetryJob, items: list[RetryJobItem]) -> tuple[list, dict[str, RetryPlan]]:
    """Give each item with a captured call a fresh retry id (CLAIMED) and refuse the rest."""
    plans = retry_plans([i.task_id for i in items])
    claimed, refused = [], []
    for item in items:
        plan = plans[item.task_id]
        if plan.call is None:
            item.state, item.reason = RetryJobItem.State.REFUSED, plan.refusal[:500]
            refused.append(item)
        else:
            item.state, item.retry_task_id = RetryJobItem.State.CLAIMED, str(uuid.uuid4())
            claimed.append(item)
    with transaction.atomic():
        RetryJobItem.objects.bulk_update(items, ["state", "retry_task_id", "reason"])
        if refused:
            RetryJob.objects.filter(pk=job.pk).update(refused=F("refused") + len(refused))
    return claimed, plans


def _recover_claimed(job: RetryJob, owner: str) -> None:
    """Items claimed by a runner that died: count them if their retry ran, else re-send safely.

    A claimed retry may or may not have been published. If its run exists it was; otherwise
    its id is revoked (kept, so no worker will ever run it) and the item goes back to pending,
    to be sent under a new id. Either way each run is retried once.
    """
    from taskops.services.live import task_revoke

    claimed = list(job.items.filter(state=RetryJobItem.State.CLAIMED).order_by("id"))
    for start in range(0, len(claimed), 1000):
        chunk = claimed[start:start + 1000]
        ran = set(TaskResult.objects.filter(task_id__in=[i.retry_task_id for i in chunk])
                  .values_list("task_id", flat=True))
        done = [i for i in chunk if i.retry_task_id in ran]
        unknown = [i for i in chunk if i.retry_task_id not in ran]
        if done:
            _confirm_sent(job, done, retry_plans([i.task_id for i in done]), job.created_by)
        if unknown:
            task_revoke(actor=Actor(user=None), task_ids=[i.retry_task_id for i in unknown],
                        reason=f"bulk retry job {job.pk} resumed: unconfirmed sends are revoked "
                               "and sent again under new ids")
            RetryJobItem.objects.filter(pk__in=[i.pk for i in unknown]).update(
                state=RetryJobItem.State.PENDING, retry_task_id="")


def retry_job_process(job_id: int, *, owner: str) -> RetryJob:
    """Run (or resume) a bulk retry job in chunks; called by the console's own Celery task."""
    job = RetryJob.objects.get(pk=job_id)
    if job.state == RetryJob.State.DONE:
        return job
    if not _lease(job_id, owner):
        raise RetryJobBusy(f"retry job {job_id} is held by another runner until {job.lease_until}")
    RetryJob.objects.filter(pk=job_id).update(
        state=RetryJob.State.RUNNING, started_at=job.started_at or timezone.now(), last_error="")
    chunk_size = int(_setting("TASKOPS_RETRY_CHUNK_SIZE", 1000))
    delay = _setting("TASKOPS_RETRY_CHUNK_DELAY", 0)
    try:
        _recover_claimed(job, owner)
        while _lease(job_id, owner):
            items = list(job.items.filter(state=RetryJobItem.State.PENDING).order_by("id")[:chunk_size])
            if not items:
                RetryJob.objects.filter(pk=job_id).update(
                    state=RetryJob.State.DONE, finished_at=timezone.now(), lease_owner="",
                    lease_until=None)
                break
            claimed, plans = retry_job_claim(job, items)
            calls_publish([(i.retry_task_id, plans[i.task_id].call, i.task_id) for i in claimed])
            _confirm_sent(job, claimed, plans, job.created_by)
            if delay:
                time.sleep(delay)  # TASKOPS_RETRY_CHUNK_DELAY: spare the queues downstream
    except BrokerUnavailable as exc:
        RetryJob.objects.filter(pk=job_id).update(
            state=RetryJob.State.FAILED, last_error=f"broker unavailable: {exc}; resume to continue",
            lease_owner="", lease_until=None)
    return RetryJob.objects.get(pk=job_id)
