"""Writes of the task catalog: sending a new run of a task from the console, audited."""

from __future__ import annotations

import json
import uuid
from datetime import datetime

from celery.utils.saferepr import saferepr
from django_celery_results.models import TaskResult
from kombu.utils.json import dumps as kombu_dumps

from taskops.capture import CapturedCall
from taskops.conf import celery_app
from taskops.connection import BrokerUnavailable
from taskops.models import AuditEntry
from taskops.publish import calls_publish
from taskops.selectors.catalog import send_refusals
from taskops.services.base import ActionOutcome, Actor, AuditedAction


def _when_text(countdown: float | None, eta: datetime | None) -> str:
    if eta is not None:
        return f", not before {eta.isoformat()}"
    if countdown:
        return f", in {countdown:g} s"
    return ""


def refuse_unless_sendable(act: AuditedAction, *, name: str, queue: str, priority: int | None) -> None:
    """Refuse (recorded) a send the console does not make: a task denied, not allowed for the
    person or not confirmed by a live worker; a queue it does not know or Celery's own; a
    priority the broker does not take for that queue."""
    if refusals := send_refusals(user=act.actor.user, name=name, queue=queue, priority=priority):
        act.refuse(" ".join(refusals.values()), fields=refusals)


def run_record_pending(task_id: str, name: str, args: list, kwargs: dict,
                        periodic_task_name: str | None = None) -> None:
    """A PENDING row for the new run, so its page exists (and follows it) before a worker starts it.

    Its arguments are stored as the results backend stores them (a JSON-encoded repr, cut at
    1 KB); the worker's first state update rewrites the same row. A schedule run now carries
    its schedule's name, as beat's runs do, so it shows in the schedule's history at once.
    """
    amqp = celery_app().amqp
    TaskResult.objects.get_or_create(task_id=task_id, defaults={
        "task_name": name, "status": "PENDING", "periodic_task_name": periodic_task_name,
        "task_args": json.dumps(saferepr(tuple(args), amqp.argsrepr_maxsize)),
        "task_kwargs": json.dumps(saferepr(kwargs, amqp.kwargsrepr_maxsize)),
    })


def task_send(
    *,
    actor: Actor,
    name: str,
    args: list,
    kwargs: dict,
    queue: str,
    countdown: float | None = None,
    eta: datetime | None = None,
    priority: int | None = None,
    expires: float | None = None,
    time_limit: float | None = None,
    soft_time_limit: float | None = None,
    reason: str = "",
) -> ActionOutcome:
    """Send a new run of `name` with these arguments and options; the outcome's detail has its id."""
    task_id = str(uuid.uuid4())
    options = {
        key: value for key, value in {
            "countdown": countdown, "eta": eta, "expires": expires,
        }.items() if value is not None
    }
    call = CapturedCall(task=name, args=args, kwargs=kwargs, routing_key=queue, priority=priority,
                        time_limit=time_limit, soft_time_limit=soft_time_limit)
    # The audit log keeps the call as JSON (datetimes and UUIDs written as kombu marks them).
    params = json.loads(kombu_dumps({
        "args": args, "kwargs": kwargs, "queue": queue, **options,
        **{k: v for k, v in {"priority": priority, "time_limit": time_limit,
                             "soft_time_limit": soft_time_limit}.items() if v is not None},
    }))
    params["task_id"] = task_id
    act = AuditedAction(actor, "task.trigger", name, params, reason)
    act.refuse_unless_storable(args=args, kwargs=kwargs)  # first: no other refusal could keep them
    act.refuse_unless_allowed("task.trigger")
    refuse_unless_sendable(act, name=name, queue=queue, priority=priority)
    act.intent()
    try:
        calls_publish([(task_id, call, None)], **options)
    except BrokerUnavailable as exc:
        return act.broker_failed(exc, f"Sending {name}")
    run_record_pending(task_id, name, args, kwargs)
    message = f"Sent {name} to queue {queue} as {task_id}{_when_text(countdown, eta)}."
    return act.finish(ActionOutcome(AuditEntry.Outcome.OK, message, {"task_id": task_id}))
