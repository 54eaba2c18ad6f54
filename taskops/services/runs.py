"""Writes on task runs: faithful retry of one or many runs, with edits, and resumable bulk retry jobs."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import signal
import sys
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import NamedTuple

from celery.utils.nodenames import anon_nodename
from celery.utils.saferepr import saferepr

from django.conf import settings
from django.db import connection, connections, transaction
from django.db.models import F
from django.utils import timezone
from django_celery_results.models import TaskResult
from kombu.common import maybe_declare
from kombu.exceptions import BatchPublishError

from taskops.capture import RETRY_OF_HEADER, CapturedCall, NoCapture, call_from_meta
from taskops.conf import celery_app
from taskops.connection import BrokerUnavailable, broker_connection
from taskops.models import AuditEntry, RetryJob, RetryJobItem, RunRetry
from taskops.services.approvals import MIN_REASON_LENGTH, approvable, dangerous_gate
from taskops.services.base import (
    ActionOutcome,
    Actor,
    audit_record,
    reason_missing,
    refused,
    unavailable,
)

log = logging.getLogger(__name__)

# Runs that have finished; a queued or running run is revoked, not retried.
RETRYABLE_STATES = ("FAILURE", "REVOKED", "SUCCESS")
JOB_TASK = "taskops.retry_job_run"
# Messages per Redis pipeline in a publish batch.
PUBLISH_BATCH = 1000
# Rows per statement when the bulk job writes many rows at once (well under SQLite's 32,766 parameters).
SQL_ROWS = 1000


def _setting(name: str, default: float) -> float:
    return float(getattr(settings, name, default))


class RetryJobBusy(Exception):
    """Another runner holds the job's lease (it may be alive, or its lease not yet expired)."""


class Send(NamedTuple):
    """One call to send: its new task id, the call, and for a retry the run it retries.

    A retry also carries the original's argument reprs as the results table kept them (the
    sender may have masked them with `argsrepr`); None computes them as Celery does.
    """

    task_id: str
    call: CapturedCall
    original_id: str | None = None
    argsrepr: str | None = None
    kwargsrepr: str | None = None


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


def _headers(send: Send) -> dict:
    """The call's own headers, and for a retry the header that links it to the original."""
    return {**send.call.headers, **({RETRY_OF_HEADER: send.original_id} if send.original_id else {})}


class _Sender:
    """Celery's own send path for many calls, with what `app.send_task` looks up per call read once.

    Per message it does what send_task does: the task's execution options as defaults, the
    app's router, `amqp.as_task_v2`, `backend.on_task_call` and `amqp.send_task_message` on the
    given producer. What it does not repeat per message: reading the configuration (each read
    costs ~20 µs on a Django-backed Celery config, and send_task makes several), declaring the
    queue (declared once per queue per batch), and computing argument reprs a retry already has.
    """

    def __init__(self, app, producer, *, sent_events: bool | None) -> None:
        conf = app.conf
        self.app, self.amqp, self.producer = app, app.amqp, producer
        self.router = self.amqp.router
        self.send_message = self.amqp.send_task_message  # builds a sender: take it once
        self.backend = app.backend
        self.sent_event = conf.task_send_sent_event if sent_events is None else sent_events
        self.inherit_priority = conf.task_inherit_parent_priority
        self.maxlevels = conf.task_repr_maxlevels
        self.origin = anon_nodename()
        self.reply_to = app.thread_oid
        self.parent = app.current_worker_task
        self.declared: set[str] = set()
        self.exec_options: dict[str, tuple[object, dict]] = {}

    def _task_defaults(self, name: str) -> tuple[object, dict]:
        if name not in self.exec_options:
            task = self.app._tasks.get(name)
            found = getattr(task, "_get_exec_options", dict)() if task is not None else {}
            self.exec_options[name] = (task, {k: v for k, v in (found or {}).items()
                                              if v is not None})
        return self.exec_options[name]

    def fits(self, call: CapturedCall) -> bool:
        """False when the task's defaults ask for what only send_task handles (expiry, delays)."""
        return "expires" not in self._task_defaults(call.task)[1]

    def publish(self, send: Send) -> None:
        call = send.call
        task_type, defaults = self._task_defaults(call.task)
        options = dict(defaults)
        options.update(
            queue=call.routing_key or None,
            # A captured exchange comes with its routing key; a queue alone routes by that
            # queue's own declaration (Celery then publishes to the queue directly).
            exchange=call.exchange or None,
            routing_key=(call.routing_key or None) if call.exchange else None,
            priority=call.priority,
            headers=_headers(send),
        )
        options.pop("time_limit", None), options.pop("soft_time_limit", None)
        ignore_result = options.pop("ignore_result", None)
        options = self.router.route(options, call.task, call.args, call.kwargs, task_type)
        root_id = parent_id = None
        if self.parent is not None:
            root_id = self.parent.request.root_id or self.parent.request.id
            parent_id = self.parent.request.id
            if self.inherit_priority:
                options.setdefault("priority", self.parent.request.delivery_info.get("priority"))
        message = self.amqp.as_task_v2(
            send.task_id, call.task, call.args, call.kwargs,
            time_limit=call.time_limit, soft_time_limit=call.soft_time_limit,
            create_sent_event=self.sent_event, root_id=root_id, parent_id=parent_id,
            reply_to=self.reply_to, origin=self.origin, ignore_result=ignore_result,
            argsrepr=send.argsrepr if send.argsrepr is not None else saferepr(
                call.args, self.amqp.argsrepr_maxsize, maxlevels=self.maxlevels),
            kwargsrepr=send.kwargsrepr if send.kwargsrepr is not None else saferepr(
                call.kwargs, self.amqp.kwargsrepr_maxsize, maxlevels=self.maxlevels),
            **options,
        )
        queue = options.get("queue")
        if queue is not None and queue.name not in self.declared:
            maybe_declare(queue, self.producer.channel)
            self.declared.add(queue.name)
        if not ignore_result:
            self.backend.on_task_call(self.producer, send.task_id)
        self.send_message(self.producer, call.task, message, retry=False, declare=[], **options)


def calls_publish(sends: Iterable[Send | tuple], *, sent_events: bool | None = None,
                  **options) -> None:
    """Send calls, each routed as it says, on one short-timeout connection in a kombu publish batch.

    The one send path of the console: retries (an original id set: a retry-of header links them)
    and new runs from the catalog (original None; `options` such as countdown, eta, expires go
    through `app.send_task` itself; a queue, exchange or routing_key there replaces the call's,
    as a schedule run now needs). `sent_events` None sends task-sent events as the app is
    configured; bulk jobs pass False. Raises BrokerUnavailable, also when a batch flush failed
    (delivery of that batch is then uncertain).
    """
    sends = [s if isinstance(s, Send) else Send(*s) for s in sends]
    if not sends:
        return
    app = celery_app()
    with broker_connection() as conn:
        producer = app.amqp.Producer(conn, auto_declare=False)
        sender = _Sender(app, producer, sent_events=sent_events)
        try:
            with producer.batch(max_size=PUBLISH_BATCH):
                for send in sends:
                    if not options and sender.fits(send.call):
                        sender.publish(send)
                    else:
                        _send_task(app, producer, send, options)
        except BatchPublishError as exc:
            raise BrokerUnavailable(f"publishing failed, delivery uncertain: {exc}") from exc


def _send_task(app, producer, send: Send, options: dict) -> None:
    call = send.call
    routed = {
        "queue": call.routing_key or None, "exchange": call.exchange or None,
        "routing_key": (call.routing_key or None) if call.exchange else None,
    }
    app.send_task(
        call.task, args=call.args, kwargs=call.kwargs, task_id=send.task_id,
        priority=call.priority, time_limit=call.time_limit, soft_time_limit=call.soft_time_limit,
        headers=_headers(send), producer=producer, add_to_parent=False,
        # A queue, exchange or routing key in `options` (a schedule run as beat runs it) wins.
        **{**routed, **options},
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
    sends = [p.send(str(uuid.uuid4())) for p in plans.values() if p.call is not None]
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
    """Record a bulk retry of `task_ids` (any number, streamed) and start it after commit.

    More than TASKOPS_BULK_RETRY_REASON_THRESHOLD runs is a dangerous action: it needs a reason
    (ActionRefused otherwise, nothing kept), and with approvals on the job waits, queued, for a
    second person; `job.pending_approval` is then the request's id.
    """
    threshold = int(getattr(settings, "TASKOPS_BULK_RETRY_REASON_THRESHOLD", 100))
    missing_reason = False
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
        params = {"job": job.pk, "runs": job.total}
        gate = None
        if job.total > threshold:
            missing_reason = reason_missing(reason, MIN_REASON_LENGTH)
            if missing_reason:
                transaction.set_rollback(True)  # nothing is kept of a refused job
            else:
                gate = dangerous_gate(actor=actor, action="task.retry_bulk", target=f"job {job.pk}",
                                      params=params, reason=reason, approval=None)
        if not missing_reason and gate is None:
            audit_record(actor, "task.retry_bulk", f"job {job.pk}", params, reason,
                         ActionOutcome(AuditEntry.Outcome.OK,
                                       f"Bulk retry job {job.pk} of {job.total} runs started.",
                                       {"job": job.pk}))
            transaction.on_commit(lambda: retry_job_start(job.pk))
    if missing_reason:
        refused(actor, "task.retry_bulk", f"{job.total} runs", {"runs": job.total}, reason,
                f"Retrying {job.total} runs at once needs a reason (more than {threshold}): type "
                "why, it is kept in the audit log.")
    job.pending_approval = gate.detail.get("approval_id") if gate is not None else None
    return job


@approvable("task.retry_bulk", permission="task.retry")
def _retry_job_approved(*, actor: Actor, params: dict, reason: str, approval) -> ActionOutcome:
    """Start a bulk retry job that waited for approval."""
    job_id = params["job"]
    target = f"job {job_id}"
    if not RetryJob.objects.filter(pk=job_id, state=RetryJob.State.QUEUED).exists():
        return audit_record(actor, "task.retry_bulk", target, params, reason, ActionOutcome(
            AuditEntry.Outcome.REFUSED, f"Job {job_id} is no longer waiting to start."))
    try:
        retry_job_start(job_id)
    except BrokerUnavailable as exc:
        return audit_record(actor, "task.retry_bulk", target, params, reason,
                            unavailable(exc, "Starting the job"))
    return audit_record(actor, "task.retry_bulk", target, params, reason, ActionOutcome(
        AuditEntry.Outcome.OK, f"Bulk retry job {job_id} of {params['runs']} runs started.",
        {"job": job_id}))


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


def _confirm_sent(job: RetryJob, items: list[RetryJobItem], plans: dict[str, RetryPlan]) -> None:
    """Mark published items SENT and link each original to its retry (one transaction)."""
    if not items:
        return
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    user_id = job.created_by_id
    links = [(i.task_id, i.retry_task_id, plans[i.task_id].call.task if i.task_id in plans else "",
              now, user_id, job.pk, False) for i in items]
    table = connection.ops.quote_name(RunRetry._meta.db_table)
    with transaction.atomic():
        RetryJobItem.objects.filter(pk__in=[i.pk for i in items], state=RetryJobItem.State.CLAIMED
                                    ).update(state=RetryJobItem.State.SENT)
        # What bulk_create(ignore_conflicts=True) does, at a fraction of its cost per row.
        for start in range(0, len(links), SQL_ROWS):
            rows = links[start:start + SQL_ROWS]
            with connection.cursor() as cursor:
                cursor.execute(
                    f"INSERT INTO {table} (original_task_id, retry_task_id, task_name, "
                    "requested_at, requested_by_id, job_id, edited) VALUES "
                    + ", ".join(["(%s, %s, %s, %s, %s, %s, %s)"] * len(rows))
                    + " ON CONFLICT DO NOTHING",
                    [value for row in rows for value in row])
        RetryJob.objects.filter(pk=job.pk).update(sent=F("sent") + len(items))


def _items_claim(claimed: list[RetryJobItem]) -> None:
    """Mark items CLAIMED with their retry ids: one UPDATE per SQL_ROWS items.

    Django's bulk_update resolves a CASE expression per row in Python, which costs more than
    publishing the message; this is the same statement, written once.
    """
    table = connection.ops.quote_name(RetryJobItem._meta.db_table)
    for start in range(0, len(claimed), SQL_ROWS):
        rows = claimed[start:start + SQL_ROWS]
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {table} SET state = %s, reason = '', retry_task_id = CASE id "
                + "WHEN %s THEN %s " * len(rows)
                + "END WHERE id IN (" + ", ".join(["%s"] * len(rows)) + ")",
                [RetryJobItem.State.CLAIMED, *(v for i in rows for v in (i.pk, i.retry_task_id)),
                 *(i.pk for i in rows)])


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
        _items_claim(claimed)
        if refused:
            RetryJobItem.objects.bulk_update(refused, ["state", "reason"])
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
            _confirm_sent(job, done, retry_plans([i.task_id for i in done]))
        if unknown:
            task_revoke(actor=Actor(user=None), task_ids=[i.retry_task_id for i in unknown],
                        reason=f"bulk retry job {job.pk} resumed: unconfirmed sends are revoked "
                               "and sent again under new ids")
            RetryJobItem.objects.filter(pk__in=[i.pk for i in unknown]).update(
                state=RetryJobItem.State.PENDING, retry_task_id="")


def retry_job_chunk(job_id: int, after_id: int, last_id: int) -> int:
    """Claim, publish and confirm the pending items of a job with ids in (after_id, last_id].

    One chunk, start to end, in the runner or in one of its publisher processes: a chunk is
    only confirmed once it was published, so a process that dies leaves it CLAIMED (or still
    PENDING), which the next runner resolves without sending anything twice. Returns the
    number of retries sent.
    """
    job = RetryJob.objects.get(pk=job_id)
    items = list(job.items.filter(state=RetryJobItem.State.PENDING, id__gt=after_id, id__lte=last_id)
                 .order_by("id"))
    claimed, plans = retry_job_claim(job, items)
    calls_publish([plans[i.task_id].send(i.retry_task_id) for i in claimed], sent_events=False)
    _confirm_sent(job, claimed, plans)
    return len(claimed)


def _publisher_start() -> None:
    """In a publisher process: die with the runner (Linux), and close the database on the way out."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    # Whatever database connection came with the fork belongs to the runner: never use (nor
    # close) its socket here; this process opens its own on its first query.
    for inherited in connections.all(initialized_only=True):
        inherited.connection = None
    multiprocessing.util.Finalize(None, connections.close_all, exitpriority=10)


def retry_job_publishers(remaining: int, chunk_size: int) -> int:
    """How many processes run a job's chunks: TASKOPS_RETRY_PUBLISHERS (default: the cores, at
    most 4), and 1 (the runner itself) for jobs of a few chunks, throttled jobs
    (TASKOPS_RETRY_CHUNK_DELAY) and runners inside a transaction."""
    wanted = getattr(settings, "TASKOPS_RETRY_PUBLISHERS", None)
    count = int(wanted) if wanted is not None else min(4, os.cpu_count() or 1)
    if (count <= 1 or remaining < 4 * chunk_size or _setting("TASKOPS_RETRY_CHUNK_DELAY", 0)
            or connection.in_atomic_block):
        return 1
    return count


@contextmanager
def _publishers(count: int) -> Iterator[Callable[..., Future]]:
    """Yield submit(function, *args) -> Future: run here when count is 1, else in `count` processes.

    The processes are forked from the runner, so they share its Celery app and settings; its
    database connections are closed first, so each process opens its own, and the runner
    reopens its own on its next query.
    """
    if count <= 1:
        def run_here(function: Callable, *args) -> Future:
            future: Future = Future()
            try:
                future.set_result(function(*args))
            except BaseException as exc:  # raised where the result is read, as from a process
                future.set_exception(exc)
            return future

        yield run_here
        return
    connections.close_all()
    pool = ProcessPoolExecutor(max_workers=count, mp_context=multiprocessing.get_context("fork"),
                               initializer=_publisher_start)
    try:
        # A Celery prefork child is a daemonic process, which multiprocessing forbids to have
        # children, lest they outlive it. Ours die with it (PR_SET_PDEATHSIG in
        # _publisher_start), so the rule is lifted while they are forked: all of them, at the
        # first submit (the fork start method never forks later).
        config = multiprocessing.current_process()._config
        daemon = config.pop("daemon", None)
        try:
            pool.submit(int).result()
        finally:
            if daemon is not None:
                config["daemon"] = daemon
        yield pool.submit
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _run_chunks(job: RetryJob, owner: str, chunk_size: int, publishers: int) -> bool:
    """Hand out the pending items in chunks of ids until none is left; False if the lease was lost.

    With publisher processes, up to `publishers + 1` chunks are under way at once. An error
    stops the job once the chunks under way have ended (each is settled on its own).
    """
    delay = _setting("TASKOPS_RETRY_CHUNK_DELAY", 0)
    pending = job.items.filter(state=RetryJobItem.State.PENDING).order_by("id")
    under_way: deque[Future] = deque()
    error: BaseException | None = None
    last_id = 0
    with _publishers(publishers) as submit:
        while True:
            if error is None and not _lease(job.pk, owner):
                error = RetryJobBusy(f"retry job {job.pk} lost its lease to another runner")
            while error is None and len(under_way) <= (publishers if publishers > 1 else 0):
                ids = list(pending.filter(id__gt=last_id).values_list("id", flat=True)[:chunk_size])
                if not ids:
                    break
                under_way.append(submit(retry_job_chunk, job.pk, last_id, ids[-1]))
                last_id = ids[-1]
            if not under_way:
                break
            try:
                under_way.popleft().result()
            except BaseException as exc:
                error = error or exc
                continue
            if delay and error is None:
                time.sleep(delay)  # TASKOPS_RETRY_CHUNK_DELAY: spare the queues downstream
    if isinstance(error, RetryJobBusy):
        return False
    if error is not None:
        raise error
    return True


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
    try:
        _recover_claimed(job, owner)
        remaining = job.items.filter(state=RetryJobItem.State.PENDING).count()
        if _run_chunks(job, owner, chunk_size, retry_job_publishers(remaining, chunk_size)):
            RetryJob.objects.filter(pk=job_id).update(
                state=RetryJob.State.DONE, finished_at=timezone.now(), lease_owner="",
                lease_until=None)
    except (BrokerUnavailable, BrokenProcessPool) as exc:
        _job_failed(job_id, f"broker unavailable: {exc}" if isinstance(exc, BrokerUnavailable)
                    else "a publisher process died")
    except Exception as exc:
        _job_failed(job_id, f"unexpected error: {exc!r}")
        raise
    return RetryJob.objects.get(pk=job_id)


def _job_failed(job_id: int, cause: str) -> None:
    RetryJob.objects.filter(pk=job_id).update(
        state=RetryJob.State.FAILED, last_error=f"{cause}; resume to continue (runs whose retry "
        "is unconfirmed are revoked and sent again, never twice)", lease_owner="", lease_until=None)
