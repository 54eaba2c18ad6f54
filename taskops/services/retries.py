"""Writes on task runs: faithful retry of one or many runs now, as captured or with edits."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

from django_celery_results.models import TaskResult

from taskops.capture import CapturedCall, NoCapture, call_from_meta
from taskops.connection import BrokerUnavailable
from taskops.models import AuditEntry, RunRetry
from taskops.publish import Send, calls_publish
from taskops.services.base import ActionOutcome, Actor, AuditedAction
from taskops.services.catalog import refuse_unless_sendable

# Runs that have finished; a queued or running run is revoked, not retried.
RETRYABLE_STATES = ("FAILURE", "REVOKED", "SUCCESS")


def _stored_repr(value: str | None) -> str | None:
    """The argsrepr/kwargsrepr of a run, as django-celery-results stores it (JSON text), or None."""
    if not value:
        return None
    try:
        decoded = json.loads(value)
    except ValueError:
        return None
    return decoded if isinstance(decoded, str) else None


@dataclass(frozen=True)
class RetryPlan:
    """One run to retry: its captured call, or why it cannot be retried faithfully."""

    task_id: str
    call: CapturedCall | None
    refusal: str = ""
    argsrepr: str | None = None
    kwargsrepr: str | None = None

    def send(self, retry_id: str) -> Send:
        """The retry of this run under `retry_id`, shown with the original's argument reprs."""
        return Send(retry_id, self.call, self.task_id, self.argsrepr, self.kwargsrepr)


def retry_plans(task_ids: list[str]) -> dict[str, RetryPlan]:
    """Decide, for each run, whether it can be retried with its captured call (one query)."""
    rows = {
        task_id: rest
        for task_id, *rest in TaskResult.objects.filter(task_id__in=task_ids).values_list(
            "task_id", "status", "meta", "task_args", "task_kwargs"
        )
    }
    plans = {}
    for task_id in task_ids:
        if task_id not in rows:
            plans[task_id] = RetryPlan(task_id, None, "no such run in the results")
            continue
        status, meta, task_args, task_kwargs = rows[task_id]
        if status not in RETRYABLE_STATES:
            plans[task_id] = RetryPlan(task_id, None, f"the run is {status.lower()}: retry it once "
                                                      "it has finished, or revoke it")
            continue
        call = call_from_meta(meta)
        plans[task_id] = (
            RetryPlan(task_id, None, call.reason) if isinstance(call, NoCapture)
            else RetryPlan(task_id, call, "", _stored_repr(task_args), _stored_repr(task_kwargs))
        )
    return plans


def _refusal_text(refused: dict[str, str]) -> str:
    shown = "; ".join(f"{task_id}: {why}" for task_id, why in list(refused.items())[:5])
    more = f" (and {len(refused) - 5} more)" if len(refused) > 5 else ""
    return f"Not retried: {shown}{more}."


def task_retry(*, actor: Actor, task_ids: list[str], reason: str = "") -> ActionOutcome:
    """Retry finished runs now, each with its captured call on its original queue and priority."""
    task_ids = list(dict.fromkeys(t.strip() for t in task_ids if t and t.strip()))
    plans = retry_plans(task_ids)
    refused = {p.task_id: p.refusal for p in plans.values() if p.call is None}
    sends = [p.send(str(uuid.uuid4())) for p in plans.values() if p.call is not None]
    act = AuditedAction(actor, "task.retry", task_ids[0] if len(task_ids) == 1 else
                        f"{len(task_ids)} runs", {"task_ids": task_ids}, reason)
    act.refuse_unless_allowed("task.retry")
    detail = {"refused": refused}
    if not sends:
        return act.finish(ActionOutcome(AuditEntry.Outcome.REFUSED, _refusal_text(refused), detail))
    act.params["retries"] = {s.original_id: s.task_id for s in sends}
    act.intent()
    try:
        calls_publish(sends)
    except BrokerUnavailable as exc:
        return act.broker_failed(exc, "Retry")
    RunRetry.objects.bulk_create(
        RunRetry(original_task_id=original, retry_task_id=retry_id, task_name=call.task,
                 requested_by=actor.db_user)
        for retry_id, call, original, *_reprs in sends
    )
    detail["retries"] = {s.original_id: s.task_id for s in sends}
    message = (f"Retried {len(sends)} run{'s' if len(sends) != 1 else ''} with the original "
               f"arguments and routing: " + ", ".join(
                   f"{s.original_id} → {s.task_id}" for s in sends[:5])
               + (" …" if len(sends) > 5 else "") + ".")
    if refused:
        message += " " + _refusal_text(refused)
    outcome = AuditEntry.Outcome.PARTIAL if refused else AuditEntry.Outcome.OK
    return act.finish(ActionOutcome(outcome, message, detail))


def task_retry_edited(
    *, actor: Actor, task_id: str, call: CapturedCall, reason: str = ""
) -> ActionOutcome:
    """Send a run again with arguments or routing edited by the user (validated by the form)."""
    retry_id = str(uuid.uuid4())
    act = AuditedAction(actor, "task.retry_edited", task_id, _jsonable({
        "task_id": task_id, "task": call.task, "args": call.args, "kwargs": call.kwargs,
        "queue": call.routing_key, "priority": call.priority, "retry": retry_id}), reason)
    act.refuse_unless_storable(args=call.args, kwargs=call.kwargs)  # first: no other refusal could keep them
    act.refuse_unless_allowed("task.retry", "task.trigger")
    refuse_unless_sendable(act, name=call.task, queue=call.routing_key, priority=call.priority)
    act.intent()
    try:
        calls_publish([(retry_id, call, task_id)])
    except BrokerUnavailable as exc:
        return act.broker_failed(exc, "Retry")
    RunRetry.objects.create(original_task_id=task_id, retry_task_id=retry_id, task_name=call.task,
                            requested_by=actor.db_user, edited=True)
    return act.finish(ActionOutcome(
        AuditEntry.Outcome.OK, f"Sent {call.task} again with edited arguments as {retry_id}.",
        {"retry": retry_id}))


def _jsonable(value):
    """Arguments as the audit log keeps them (JSON with datetimes and UUIDs as strings)."""
    from kombu.utils.json import dumps, loads

    return loads(dumps(value), object_hook=None)
