"""Writes on the live cluster: queues, workers, revokes, worker bookkeeping and sampling."""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from datetime import timedelta

from django.db import transaction
from django.utils import timezone
from django_celery_results.models import TaskResult

from taskops import broker, cache, control, liveness
from taskops.conf import config
from taskops.connection import BrokerUnavailable
from taskops.models import (
    AuditEntry,
    PendingAction,
    PendingRevoke,
    QueueDepthSample,
    QueuePause,
    QueueSeen,
    WorkerSeen,
)
from taskops.selectors.live import queue_refusal, stranded_now, worker_answers_remembered, worker_facts
from taskops.services.approvals import MIN_REASON_LENGTH, approvable, dangerous_gate
from taskops.services.base import (
    ActionOutcome,
    Actor,
    AuditedAction,
    names_text,
    outcome_from_replies,
)
from taskops.vocabulary import SIGNALS

log = logging.getLogger(__name__)

RATE_LIMIT_RE = re.compile(r"^(\d+(\.\d+)?)(/[smh])?$")


def _online_worker_names() -> list[str]:
    return list(WorkerSeen.objects.filter(online=True).order_by("name").values_list("name", flat=True))


# --- Queues -------------------------------------------------------------------------------------


def _queue_action(actor: Actor, action: str, queue: str, reason: str, permission: str) -> AuditedAction:
    """An action on `queue`: allowed for this person, and on a queue the console knows."""
    act = AuditedAction(actor, action, queue, {"queue": queue}, reason)
    act.refuse_unless_allowed(permission)
    if refusal := queue_refusal(queue):
        act.refuse(refusal)
    return act


def queue_pause(*, actor: Actor, queue: str, reason: str = "") -> ActionOutcome:
    """Stop every worker consuming `queue` (messages stay queued) and remember it for later workers."""
    act = _queue_action(actor, "queue.pause", queue, reason, "queue.pause")
    act.intent()
    try:
        consumers = [w for w, queues in control.queue_consumers().items() if queue in queues]
        result = control.consumer_cancel(queue, destination=consumers) if consumers else None
    except BrokerUnavailable as exc:
        return act.broker_failed(exc, "Pause")
    with transaction.atomic():
        pause, created = QueuePause.objects.select_for_update().get_or_create(
            queue=queue,
            defaults={"paused_by": actor.db_user, "reason": reason},
        )
        pause.workers = sorted(set(pause.workers) | set(consumers))
        pause.save(update_fields=["workers"])
    later = "Workers that start later are paused too; messages stay in the queue."
    if result is None:
        outcome = ActionOutcome(
            AuditEntry.Outcome.OK,
            f"Queue {queue} paused. No worker was consuming it. {later}",
            {"workers": []},
        )
    else:
        outcome = outcome_from_replies(
            result,
            f"Queue {queue} paused",
            none_answered=f"Queue {queue} is marked paused, but no worker answered. {later}",
        )
        outcome = ActionOutcome(outcome.outcome, f"{outcome.message} {later}", outcome.detail)
    return act.finish(outcome)


def queue_resume(*, actor: Actor, queue: str, reason: str = "") -> ActionOutcome:
    """Let the workers paused on `queue` consume it again and forget the pause."""
    act = AuditedAction(actor, "queue.resume", queue, {"queue": queue}, reason)
    act.refuse_unless_allowed("queue.pause")
    pause = QueuePause.objects.filter(queue=queue).first()
    if pause is None:
        act.refuse(f"Queue {queue} is not paused.")
    workers = list(pause.workers)
    act.intent()
    try:
        result = control.consumer_add(queue, destination=workers) if workers else None
    except BrokerUnavailable as exc:
        return act.broker_failed(exc, "Resume")
    pause.delete()
    for seen in WorkerSeen.objects.filter(name__in=result.answered if result else ()):
        seen.queues = sorted({*seen.queues, queue})
        seen.save(update_fields=["queues"])
    if result is None:
        outcome = ActionOutcome(
            AuditEntry.Outcome.OK, f"Queue {queue} resumed. No worker had been paused on it.", {}
        )
    else:
        outcome = outcome_from_replies(
            result,
            f"Queue {queue} resumed",
            none_answered=f"Queue {queue} resumed, but none of its workers answered "
            f"({names_text(workers)}); workers that start now consume it.",
        )
    return act.finish(outcome)


def _name_confirmed(act: AuditedAction, *, kind: str, what: str, confirm: str,
                    approval: PendingAction | None) -> ActionOutcome | None:
    """A dangerous action on `act.target`: refused unless its name was typed; then the gate decides."""
    if confirm.strip() != act.target:
        act.refuse(f"Type the {kind}'s name ({act.target}) to confirm the {what}.")
    return dangerous_gate(act, approval)


def queue_purge(
    *, actor: Actor, queue: str, confirm: str, reason: str = "",
    approval: PendingAction | None = None,
) -> ActionOutcome:
    """Delete every message waiting in `queue`; `confirm` must repeat the queue's name.

    Dangerous: needs a reason, and a second person's approval when approvals are on.
    """
    act = _queue_action(actor, "queue.purge", queue, reason, "queue.purge")
    if gate := _name_confirmed(act, kind="queue", what="purge", confirm=confirm, approval=approval):
        return gate
    act.intent()
    try:
        removed = broker.queue_purge(queue)
    except broker.QueueNotPurgeable as exc:
        return act.finish(ActionOutcome(AuditEntry.Outcome.REFUSED, f"Nothing was purged: {exc}."))
    except BrokerUnavailable as exc:
        return act.broker_failed(exc, "Purge")
    return act.finish(ActionOutcome(
        AuditEntry.Outcome.OK,
        f"Purged {removed} waiting message{'s' if removed != 1 else ''} from {queue}. "
        "Messages workers had already taken are not affected.",
        {"removed": removed},
    ))


@approvable("queue.purge", permission="queue.purge")
def _queue_purge_approved(*, actor: Actor, params: dict, reason: str, approval) -> ActionOutcome:
    return queue_purge(actor=actor, queue=params["queue"], confirm=params["queue"], reason=reason,
                       approval=approval)


def queue_stranded_restore(*, actor: Actor, queue: str, reason: str = "") -> ActionOutcome:
    """Give `queue` back the messages stranded in flight (taken by a worker that is gone, held by
    no worker), now instead of at the broker's visibility timeout, through kombu's own restore.

    Which messages are stranded is read afresh (taskops.liveness.in_flight_kind): held by no
    worker that answered, and not possibly by one that did not. Each goes back to the front of
    its queue; a task that was running when its worker died runs again. Needs a reason.
    """
    act = _queue_action(actor, "queue.restore", queue, reason, "queue.restore")
    act.refuse_without_reason("Returning stranded messages needs a reason: type why (it is kept in "
                              "the audit log).", min_length=MIN_REASON_LENGTH)
    try:
        stranded = stranded_now(queue)
    except BrokerUnavailable as exc:
        return act.broker_failed(exc, "Return")
    if stranded is None:
        act.refuse(f"The console cannot tell which messages of {queue} are stranded: the broker is "
                   f"not Redis, or more than {broker.UNACKED_DETAIL_LIMIT} messages are in flight.")
    if not stranded:
        act.refuse(f"No message of {queue} is stranded now: every message in flight is held by a "
                   "worker, or may be held by one that does not answer.")
    act.intent()
    try:
        restored = broker.unacked_restore([row.message.tag for row in stranded])
    except BrokerUnavailable as exc:
        return act.broker_failed(exc, "Return")
    finally:
        cache.drop(cache.LIVE_KEY)
    detail = {"stranded": len(stranded), "restored": restored,
              "task_ids": [row.message.id for row in stranded][:100]}
    plural = "s" if restored != 1 else ""
    message = (f"Returned {restored} stranded message{plural} to the front of {queue}; a task that was "
               "running when its worker died runs again.")
    if restored < len(stranded):
        message += (f" {len(stranded) - restored} had been given back or acknowledged meanwhile.")
        return act.finish(ActionOutcome(AuditEntry.Outcome.PARTIAL, message, detail))
    return act.finish(ActionOutcome(AuditEntry.Outcome.OK, message, detail))


# --- Workers ------------------------------------------------------------------------------------


def _pool_after(worker: str, before: tuple[int, ...], *, wait: float = 2.0) -> tuple[int, ...] | None:
    """The pool's process ids as the worker reports them once they changed (or after `wait`)."""
    deadline = time.monotonic() + wait
    processes: tuple[int, ...] | None = None
    while True:
        stats = control.worker_stats(destination=[worker]).get(worker)
        processes = stats.pool_processes if stats else None
        if processes is not None and processes != before or time.monotonic() >= deadline:
            return processes
        time.sleep(0.2)


def worker_pool_resize(*, actor: Actor, worker: str, delta: int, reason: str = "") -> ActionOutcome:
    """Grow (delta > 0) or shrink (delta < 0) a worker's pool; report the processes it has after."""
    action = "worker.pool_grow" if delta > 0 else "worker.pool_shrink"
    act = AuditedAction(actor, action, worker, {"worker": worker, "n": abs(delta)}, reason)
    act.refuse_unless_allowed("worker.control")
    ceiling = config.worker_pool_max
    if delta == 0 or abs(delta) > ceiling:
        act.refuse(f"Change the pool by 1 to {ceiling} processes.")
    try:
        before_stats = control.worker_stats(destination=[worker]).get(worker)
        if before_stats is None:
            return act.finish(ActionOutcome(
                AuditEntry.Outcome.NO_REPLY, f"{worker} did not answer; its pool was not changed."))
        before = before_stats.pool_processes
        if delta > 0 and len(before) + delta > ceiling:
            act.refuse(f"{worker} has {len(before)} pool processes; growing by {delta} would pass "
                       f"the ceiling of {ceiling} per worker (TASKOPS_WORKER_POOL_MAX).")
        if delta < 0 and len(before) + delta < 1:
            act.refuse(f"{worker} has {len(before)} pool processes; it keeps at least one.")
        send = control.pool_grow if delta > 0 else control.pool_shrink
        act.intent()
        result = send(abs(delta), destination=[worker])
        if result.errors or not result.replies:
            return act.finish(outcome_from_replies(
                result, "Pool change", none_answered=f"{worker} did not answer."))
        # A new prefork process imports the project before it shows up (~1.5 s idle).
        after = _pool_after(worker, before, wait=4.0 if delta > 0 else 2.0)
    except BrokerUnavailable as exc:
        return act.broker_failed(exc, "Pool change")
    detail = {"before": list(before), "after": list(after or ())}
    if after is None:
        message = f"{worker} took the request but did not report its pool afterwards."
        return act.finish(ActionOutcome(AuditEntry.Outcome.PARTIAL, message, detail))
    if after == before:
        why = ("a shrink waits for a process to be idle" if delta < 0
               else "new processes are still starting")
        message = (f"{worker} took the request but still reports {len(after)} processes "
                   f"({names_text(map(str, after))}): {why}. The worker page shows the current list.")
        outcome = AuditEntry.Outcome.PARTIAL
    else:
        message = (f"{worker} now reports {len(after)} pool processes "
                   f"(was {len(before)}): {names_text(map(str, after))}.")
        outcome = AuditEntry.Outcome.OK
    return act.finish(ActionOutcome(outcome, message, detail))


def worker_autoscale(
    *, actor: Actor, worker: str, max_processes: int, min_processes: int, reason: str = ""
) -> ActionOutcome:
    """Set the autoscaler's bounds of a worker started with --autoscale."""
    act = AuditedAction(actor, "worker.autoscale", worker,
                        {"worker": worker, "max": max_processes, "min": min_processes}, reason)
    act.refuse_unless_allowed("worker.control")
    ceiling = config.worker_pool_max
    if not (0 <= min_processes <= max_processes <= ceiling) or max_processes < 1:
        act.refuse(f"Autoscale needs 0 <= min <= max <= {ceiling} (TASKOPS_WORKER_POOL_MAX) "
                   "and max >= 1.")
    try:
        stats = control.worker_stats(destination=[worker]).get(worker)
        if stats is not None and not stats.autoscaler:
            act.refuse(f"{worker} was not started with --autoscale; resize its pool instead.")
        act.intent()
        result = control.autoscale(max_processes, min_processes, destination=[worker])
    except BrokerUnavailable as exc:
        return act.broker_failed(exc, "Autoscale")
    return act.finish(outcome_from_replies(
        result, f"Autoscale of {worker} set to {min_processes}–{max_processes}",
        none_answered=f"{worker} did not answer; autoscale unchanged.",
    ))


def worker_rate_limit(
    *, actor: Actor, worker: str, task_name: str, rate: str, reason: str = ""
) -> ActionOutcome:
    """Set (or with "" remove) a task's rate limit on a worker, e.g. "10/m"."""
    rate = rate.strip()
    act = AuditedAction(actor, "worker.rate_limit", worker,
                        {"worker": worker, "task": task_name, "rate_limit": rate}, reason)
    act.refuse_unless_allowed("worker.control")
    if rate and not RATE_LIMIT_RE.match(rate):
        act.refuse(f"{rate!r} is not a rate limit: use a number per second, minute or hour "
                   "such as 10/s, 100/m or 1000/h, or leave it empty to remove the limit.")
    if not task_name.strip():
        act.refuse("Choose a task.")
    act.intent()
    try:
        result = control.rate_limit(task_name, rate, destination=[worker])
    except BrokerUnavailable as exc:
        return act.broker_failed(exc, "Rate limit")
    what = f"Rate limit of {task_name} on {worker} {'set to ' + rate if rate else 'removed'}"
    return act.finish(outcome_from_replies(
        result, what, none_answered=f"{worker} did not answer; nothing changed."))


def worker_shutdown(
    *, actor: Actor, worker: str, confirm: str, reason: str = "",
    approval: PendingAction | None = None,
) -> ActionOutcome:
    """Ask a worker to shut down warmly; `confirm` must repeat its name. Checks it went away.

    Dangerous: needs a reason, and a second person's approval when approvals are on.
    """
    act = AuditedAction(actor, "worker.shutdown", worker, {"worker": worker}, reason)
    act.refuse_unless_allowed("worker.shutdown")
    if gate := _name_confirmed(act, kind="worker", what="shutdown", confirm=confirm,
                               approval=approval):
        return gate
    act.intent()
    try:
        control.shutdown(destination=[worker])
        deadline = time.monotonic() + 3
        still_there = True
        while still_there and time.monotonic() < deadline:
            still_there = bool(control.worker_ping(destination=[worker], timeout=0.5))
    except BrokerUnavailable as exc:
        return act.broker_failed(exc, "Shutdown")
    if still_there:
        return act.finish(ActionOutcome(
            AuditEntry.Outcome.PARTIAL,
            f"Shutdown sent to {worker}; it still answers (it finishes its running tasks first).",
        ))
    now = timezone.now()
    WorkerSeen.objects.filter(name=worker).update(online=False, goodbye_at=now, last_seen_at=now)
    cache.drop(cache.LIVE_KEY)
    return act.finish(ActionOutcome(AuditEntry.Outcome.OK,
                                    f"{worker} shut down: it no longer answers."))


@approvable("worker.shutdown", permission="worker.shutdown")
def _worker_shutdown_approved(*, actor: Actor, params: dict, reason: str, approval) -> ActionOutcome:
    return worker_shutdown(actor=actor, worker=params["worker"], confirm=params["worker"],
                           reason=reason, approval=approval)


# --- Tasks --------------------------------------------------------------------------------------


def task_revoke(
    *,
    actor: Actor,
    task_ids: list[str],
    terminate: bool = False,
    signal: str = "SIGTERM",
    reason: str = "",
    approval: PendingAction | None = None,
) -> ActionOutcome:
    """Revoke tasks everywhere (with `terminate`, kill them if running) and keep the revoke.

    Terminate is dangerous: it needs its own permission, a reason, and a second person's
    approval when approvals are on.

    Kept revokes are applied by every worker that starts later (see worker_came_online), so a
    revoke survives a worker that was down or restarted. A revoke no worker acknowledged is
    reported as such, not as done.
    """
    task_ids = [t.strip() for t in task_ids if t and t.strip()]
    terminate = terminate is True
    action = "task.terminate" if terminate else "task.revoke"
    params = {"task_ids": task_ids, "terminate": terminate, "signal": signal if terminate else ""}
    act = AuditedAction(actor, action,
                        task_ids[0] if len(task_ids) == 1 else f"{len(task_ids)} tasks", params,
                        reason)
    act.refuse_unless_allowed(*(["task.revoke", "task.terminate"] if terminate else ["task.revoke"]))
    if not task_ids:
        act.refuse("No task id given.")
    if terminate and signal not in SIGNALS:
        act.refuse(f"Signal must be one of {', '.join(SIGNALS)}.")
    if terminate and (gate := dangerous_gate(act, approval)):
        return gate
    act.intent()
    names = dict(TaskResult.objects.filter(task_id__in=task_ids).values_list("task_id", "task_name"))
    for task_id in task_ids:
        PendingRevoke.objects.update_or_create(
            task_id=task_id,
            defaults={"task_name": names.get(task_id) or "", "terminate": terminate,
                      "signal": signal if terminate else "", "requested_by": actor.db_user},
        )
    try:
        result = control.revoke(task_ids, terminate=terminate, signal=signal,
                                expected=_online_worker_names() or None)
    except BrokerUnavailable as exc:
        return act.broker_failed(exc, "Revoke",
                                 after="The revoke is kept: workers apply it when they start.")
    answered = sorted(result.replies)
    for revoke in PendingRevoke.objects.filter(task_id__in=task_ids):
        revoke.acknowledged_by = sorted(set(revoke.acknowledged_by) | set(answered))
        revoke.save(update_fields=["acknowledged_by"])
    verb = f"Terminate ({signal})" if terminate else "Revoke"
    target = act.target
    return act.finish(outcome_from_replies(
        result,
        f"{verb} of {target} acknowledged",
        none_answered=f"{verb} of {target} NOT acknowledged: no worker answered. It is kept and "
        "every worker applies it when it starts, so the task will not run.",
    ))


@approvable("task.terminate", permission="task.terminate")
def _task_terminate_approved(*, actor: Actor, params: dict, reason: str, approval) -> ActionOutcome:
    return task_revoke(actor=actor, task_ids=params["task_ids"], terminate=True,
                       signal=params["signal"] or "SIGTERM", reason=reason, approval=approval)


# --- Worker lifecycle (called from the worker process's own signal handlers) ---------------------


@dataclass(frozen=True)
class WorkerStartPlan:
    """What a starting worker must apply before it consumes anything."""

    hold_queues: tuple[str, ...]
    revoked_ids: tuple[str, ...]


def worker_came_online(*, name: str, queues: list[str]) -> WorkerStartPlan:
    """Record a starting worker; return the paused queues it must not consume and the revokes.

    Its queues are recorded without the paused ones: it never consumes those until resumed.
    """
    now = timezone.now()
    with transaction.atomic():
        hold = []
        for pause in QueuePause.objects.select_for_update().filter(queue__in=queues):
            pause.workers = sorted(set(pause.workers) | {name})
            pause.save(update_fields=["workers"])
            hold.append(pause.queue)
        consuming = sorted(set(queues) - set(hold))
        WorkerSeen.objects.update_or_create(name=name, defaults={
            "last_seen_at": now, "online": True, "queues": consuming, "started_at": now,
            "ready_at": None, "stopping_since": None, "goodbye_at": None})
        _queues_consumed(consuming, now)
        revokes = list(PendingRevoke.objects.select_for_update())
        for revoke in revokes:
            if name not in revoke.acknowledged_by:
                revoke.acknowledged_by = sorted([*revoke.acknowledged_by, name])
                revoke.save(update_fields=["acknowledged_by"])
    cache.drop(cache.LIVE_KEY)
    return WorkerStartPlan(tuple(sorted(hold)), tuple(r.task_id for r in revokes))


def worker_became_ready(*, name: str) -> None:
    """Record a worker that is ready: it consumes, and answers the console from now on."""
    now = timezone.now()
    WorkerSeen.objects.filter(name=name).update(ready_at=now, last_seen_at=now, online=True)
    cache.drop(cache.LIVE_KEY)


def worker_stopping(*, name: str) -> None:
    """Record a worker that began a warm shutdown: it finishes its running tasks, answering nobody."""
    now = timezone.now()
    # Not once it said goodbye: a worker with nothing to finish may say both at once.
    WorkerSeen.objects.filter(name=name, online=True).update(stopping_since=now, last_seen_at=now)
    cache.drop(cache.LIVE_KEY)


def worker_went_offline(*, name: str) -> None:
    """Record a worker that said goodbye (it shut down)."""
    now = timezone.now()
    WorkerSeen.objects.filter(name=name).update(online=False, goodbye_at=now, last_seen_at=now)
    cache.drop(cache.LIVE_KEY)


def _queues_consumed(names: list[str], now) -> None:
    """Note that a worker consumes `names` now (the idle section reads when each was last consumed)."""
    if not names:
        return
    QueueSeen.objects.bulk_create([QueueSeen(queue=name, first_seen_at=now) for name in names],
                                  ignore_conflicts=True)
    QueueSeen.objects.filter(queue__in=names).update(last_consumed_at=now)


# --- Sampling (run by beat, see taskops.sampler) --------------------------------------------------


def cluster_sample(*, queue_names: list[str]) -> int:
    """Record who answers, who is offline by the rules of taskops.liveness (said goodbye, or silent
    for TASKOPS_WORKER_OFFLINE_AFTER_SECONDS: never for one missed ping), which queues are seen
    and consumed, and every queue's depth; drop history past retention. Returns samples."""
    now = timezone.now()
    online = set(control.worker_discover())
    remembered = worker_answers_remembered()
    with transaction.atomic():
        for name in online:
            WorkerSeen.objects.update_or_create(
                name=name, defaults={"last_seen_at": now, "last_answered_at": now, "online": True}
            )
        silent = WorkerSeen.objects.filter(online=True).exclude(name__in=online)
        gone = [row.name for row in silent
                if liveness.worker_state(worker_facts(row, None, remembered.get(row.name), broker_ok=True),
                                         now=now).state == liveness.OFFLINE]
        WorkerSeen.objects.filter(name__in=gone).update(online=False)
        age_out = now - timedelta(hours=config.worker_age_out_hours)
        WorkerSeen.objects.filter(online=False, last_seen_at__lt=age_out).delete()
    paused = list(QueuePause.objects.values_list("queue", flat=True))
    reading = broker.queue_depths([*queue_names, *paused])
    samples = [
        QueueDepthSample(queue=q.name, sampled_at=now, depth=q.depth or 0, in_flight=q.in_flight)
        for q in reading.queues.values()
        if q.exists and q.depth is not None
    ]
    QueueDepthSample.objects.bulk_create(samples)
    seen_queues = sorted(reading.queues)
    QueueSeen.objects.bulk_create([QueueSeen(queue=name, first_seen_at=now) for name in seen_queues],
                                  ignore_conflicts=True)
    QueueSeen.objects.exclude(queue__in=seen_queues).delete()  # its binding is gone: no queue
    consumed = {queue for queues in WorkerSeen.objects.filter(name__in=online)
                .values_list("queues", flat=True) for queue in queues}
    _queues_consumed(sorted(consumed & set(seen_queues)), now)
    revoke_keep = timedelta(hours=config.revoke_retention_hours)
    PendingRevoke.objects.filter(requested_at__lt=now - revoke_keep).delete()
    keep = now - timedelta(hours=config.depth_retention_hours)
    while True:  # batched, so a long backlog never holds one huge delete
        old = list(QueueDepthSample.objects.filter(sampled_at__lt=keep).values_list("pk", flat=True)[:5000])
        if not old:
            break
        QueueDepthSample.objects.filter(pk__in=old).delete()
    return len(samples)
