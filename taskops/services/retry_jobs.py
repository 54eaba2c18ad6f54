"""Writes of bulk retry jobs: many runs retried in chunks, resumable, each run sent once."""

from __future__ import annotations

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
from datetime import timedelta

from django.db import connection, connections, transaction
from django.db.models import F
from django.utils import timezone
from django_celery_results.models import TaskResult

from taskops.conf import config
from taskops.connection import BrokerUnavailable
from taskops.models import AuditEntry, PendingAction, RetryJob, RetryJobItem, RunRetry
from taskops.publish import calls_publish, console_task_send
from taskops.services.approvals import MIN_REASON_LENGTH, approvable, dangerous_gate
from taskops.services.base import ActionOutcome, Actor, AuditedAction, reason_missing
from taskops.services.live import task_revoke
from taskops.services.retries import SQL_ROWS, RetryPlan, retries_claim, retry_plans

log = logging.getLogger(__name__)

JOB_TASK = "taskops.retry_job_run"


class RetryJobBusy(Exception):
    """Another runner holds the job's lease (it may be alive, or its lease not yet expired)."""


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
    *, actor: Actor, task_ids: Iterable[str], description: str, reason: str = "",
    include_retried: bool = False, include_succeeded: bool = False,
) -> RetryJob:
    """Record a bulk retry of `task_ids` (streamed, at most TASKOPS_BULK_RETRY_MAX) and start it
    after commit.

    More than TASKOPS_BULK_RETRY_REASON_THRESHOLD runs is a dangerous action: it needs a reason
    (ActionRefused otherwise, nothing kept), and with approvals on the job waits, queued, for a
    second person; `job.pending_approval` is then the request's id. More than the maximum is
    refused, nothing kept. The job skips runs retried already unless `include_retried`, and
    refuses runs that succeeded unless `include_succeeded`.
    """
    threshold, maximum = config.bulk_retry_reason_threshold, config.bulk_retry_max
    choices = {key: True for key, chosen in (("include_retried", include_retried),
                                             ("include_succeeded", include_succeeded)) if chosen}
    act = AuditedAction(actor, "task.retry_bulk", description[:255], dict(choices), reason)
    act.refuse_unless_allowed("task.retry")
    missing_reason = too_many = False
    with transaction.atomic():
        job = RetryJob.objects.create(created_by=actor.db_user, description=description[:500],
                                      reason=reason, include_retried=include_retried,
                                      include_succeeded=include_succeeded)
        total = 0
        for chunk in _chunks(task_ids, 5000):
            created = RetryJobItem.objects.bulk_create(
                [RetryJobItem(job=job, task_id=task_id) for task_id in dict.fromkeys(chunk)],
                ignore_conflicts=True,
            )
            total += len(created)
            if total > maximum:  # read no further: the job is refused
                too_many = True
                break
        job.total = job.items.count() if total else 0
        job.save(update_fields=["total"])
        act.target, act.params = f"job {job.pk}", {"job": job.pk, "runs": job.total, **choices}
        gate = None
        if too_many:
            transaction.set_rollback(True)  # nothing is kept of a refused job
        elif job.total > threshold:
            missing_reason = reason_missing(reason, MIN_REASON_LENGTH)
            if missing_reason:
                transaction.set_rollback(True)  # nothing is kept of a refused job
            else:
                gate = dangerous_gate(act, None)
        if not missing_reason and not too_many and gate is None:
            act.finish(ActionOutcome(AuditEntry.Outcome.OK,
                                     f"Bulk retry job {job.pk} of {job.total} runs started.",
                                     {"job": job.pk}))
            transaction.on_commit(lambda: retry_job_start(job.pk))
    if too_many:
        act.target, act.params = f"more than {maximum} runs", {"runs": f"> {maximum}", **choices}
        act.refuse(f"More than {maximum:,} runs in one bulk retry is refused "
                   f"(TASKOPS_BULK_RETRY_MAX={maximum}): narrow the filters, or retry them in "
                   "several jobs.")
    if missing_reason:
        act.target, act.params = f"{job.total} runs", {"runs": job.total}
        act.refuse(f"Retrying {job.total} runs at once needs a reason (more than {threshold}): "
                   "type why, it is kept in the audit log.")
    job.pending_approval = gate.detail.get("approval_id") if gate is not None else None
    return job


@approvable("task.retry_bulk", permission="task.retry")
def _retry_job_approved(*, actor: Actor, params: dict, reason: str, approval) -> ActionOutcome:
    """Start a bulk retry job that waited for approval."""
    job_id = params["job"]
    act = AuditedAction(actor, "task.retry_bulk", f"job {job_id}", params, reason)
    act.refuse_unless_allowed("task.retry")
    if not RetryJob.objects.filter(pk=job_id, state=RetryJob.State.QUEUED).exists():
        return act.finish(ActionOutcome(AuditEntry.Outcome.REFUSED,
                                        f"Job {job_id} is no longer waiting to start."))
    act.intent()
    try:
        retry_job_start(job_id)
    except BrokerUnavailable as exc:
        return act.broker_failed(exc, "Starting the job")
    return act.finish(ActionOutcome(
        AuditEntry.Outcome.OK, f"Bulk retry job {job_id} of {params['runs']} runs started.",
        {"job": job_id}))


def retry_job_start(job_id: int) -> None:
    """Queue the console's job task for `job_id` (on TASKOPS_QUEUE)."""
    console_task_send(JOB_TASK, [job_id], queue=config.queue)


def _approval_of(job: RetryJob) -> PendingAction | None:
    """The approval request a big job was made under, if it needed one."""
    return (PendingAction.objects.filter(action="task.retry_bulk", params__job=job.pk)
            .order_by("-id").first())


def _resume_refusal(job: RetryJob) -> str:
    """Why `job` may not be resumed now ("" when it may: it failed, or its runner's lease ran out)."""
    approval = _approval_of(job)
    if approval is not None and approval.state_now != PendingAction.State.APPROVED:
        state = PendingAction.State(approval.state_now).label.lower()
        return (f"Job {job.pk} was made under approval request #{approval.pk}, which is {state}: "
                "only its approval starts it.")
    if job.state == RetryJob.State.DONE:
        return f"Job {job.pk} is already done."
    if (job.state == RetryJob.State.RUNNING and job.lease_until is not None
            and job.lease_until >= timezone.now()):
        return (f"Job {job.pk} is running: its runner holds it until "
                f"{timezone.localtime(job.lease_until):%H:%M:%S}. Resume it if it is still stuck then.")
    return ""


def retry_job_resume(*, actor: Actor, job_id: int, reason: str = "") -> ActionOutcome:
    """Start a job again after its runner died; it continues where it stopped, sending nothing twice.

    Only a job that failed, whose runner's lease ran out, or whose start was lost is resumed;
    never one whose approval is open, rejected, withdrawn or expired.
    """
    act = AuditedAction(actor, "task.retry_bulk_resume", f"job {job_id}", {"job": job_id}, reason)
    act.refuse_unless_allowed("task.retry")
    job = RetryJob.objects.filter(pk=job_id).first()
    if job is None:
        act.refuse(f"There is no retry job {job_id}.")
    if refusal := _resume_refusal(job):
        act.refuse(refusal)
    act.intent()
    try:
        retry_job_start(job_id)
    except BrokerUnavailable as exc:
        return act.broker_failed(exc, "Resume")
    return act.finish(ActionOutcome(AuditEntry.Outcome.OK,
                                    f"Job {job_id} resumed: {job.remaining} runs to go."))


def _lease(job_id: int, owner: str) -> bool:
    """Take or renew the job's lease; False when another live runner holds it."""
    now = timezone.now()
    until = now + timedelta(seconds=config.retry_lease_seconds)
    taken = RetryJob.objects.filter(pk=job_id).exclude(state=RetryJob.State.DONE).filter(
        lease_owner__in=["", owner]
    ).update(lease_owner=owner, lease_until=until)
    if not taken:
        taken = RetryJob.objects.filter(pk=job_id, lease_until__lt=now).exclude(
            state=RetryJob.State.DONE).update(lease_owner=owner, lease_until=until)
    return bool(taken)


def _confirm_sent(job: RetryJob, items: list[RetryJobItem]) -> None:
    """Mark published items SENT (their runs were linked to their retries when claimed)."""
    if not items:
        return
    with transaction.atomic():
        RetryJobItem.objects.filter(pk__in=[i.pk for i in items], state=RetryJobItem.State.CLAIMED
                                    ).update(state=RetryJobItem.State.SENT)
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
    """Claim each item's run for a fresh retry id (CLAIMED, the run linked to it), skip runs
    retried already (by anyone: see retries_claim) and refuse those that cannot be retried."""
    plans = retry_plans([i.task_id for i in items], include_succeeded=job.include_succeeded,
                        user=job.created_by)
    candidates, refused = [], []
    for item in items:
        plan = plans[item.task_id]
        if plan.call is None:
            item.state, item.reason = RetryJobItem.State.REFUSED, plan.refusal[:500]
            refused.append(item)
        else:
            item.state, item.retry_task_id = RetryJobItem.State.CLAIMED, str(uuid.uuid4())
            candidates.append(item)
    with transaction.atomic():
        _, skipped = retries_claim([plans[i.task_id].send(i.retry_task_id) for i in candidates],
                                   user_id=job.created_by_id, job_id=job.pk,
                                   include_retried=job.include_retried)
        claimed = [i for i in candidates if i.task_id not in skipped]
        _items_claim(claimed)
        if skipped:
            RetryJobItem.objects.filter(job=job, task_id__in=list(skipped)).update(
                state=RetryJobItem.State.SKIPPED, retry_task_id="",
                reason="retried already: its page links the retry")
        if refused:
            RetryJobItem.objects.bulk_update(refused, ["state", "reason"])
        if refused or skipped:
            RetryJob.objects.filter(pk=job.pk).update(refused=F("refused") + len(refused),
                                                      skipped=F("skipped") + len(skipped))
    return claimed, plans


def _recover_claimed(job: RetryJob, owner: str) -> None:
    """Items claimed by a runner that died: count them if their retry ran, else re-send safely.

    A claimed retry may or may not have been published. If its run exists it was; otherwise
    its id is revoked (kept, so no worker will ever run it) and the item goes back to pending,
    to be sent under a new id. Either way each run is retried once.
    """
    claimed = list(job.items.filter(state=RetryJobItem.State.CLAIMED).order_by("id"))
    for start in range(0, len(claimed), 1000):
        chunk = claimed[start:start + 1000]
        ran = set(TaskResult.objects.filter(task_id__in=[i.retry_task_id for i in chunk])
                  .values_list("task_id", flat=True))
        done = [i for i in chunk if i.retry_task_id in ran]
        unknown = [i for i in chunk if i.retry_task_id not in ran]
        if done:
            _confirm_sent(job, done)
        if unknown:
            stale = [i.retry_task_id for i in unknown]
            task_revoke(actor=Actor(user=None), task_ids=stale,
                        reason=f"bulk retry job {job.pk} resumed: unconfirmed sends are revoked "
                               "and sent again under new ids")
            with transaction.atomic():  # the claims go with the revoked ids; the runs are claimed anew
                RunRetry.objects.filter(retry_task_id__in=stale).delete()
                RetryJobItem.objects.filter(pk__in=[i.pk for i in unknown]).update(
                    state=RetryJobItem.State.PENDING, retry_task_id="")


def retry_job_chunk(job_id: int, after_id: int, last_id: int) -> int:
    """Claim, publish and confirm the pending items of a job with ids in (after_id, last_id].

    One chunk, start to end, in the runner or in one of its publisher processes: a chunk is
    only confirmed once it was published, so a process that dies leaves it CLAIMED (or still
    PENDING), which the next runner resolves without sending anything twice. Returns the
    number of retries sent.
    """
    job = RetryJob.objects.select_related("created_by").get(pk=job_id)
    items = list(job.items.filter(state=RetryJobItem.State.PENDING, id__gt=after_id, id__lte=last_id)
                 .order_by("id"))
    claimed, plans = retry_job_claim(job, items)
    calls_publish([plans[i.task_id].send(i.retry_task_id) for i in claimed], sent_events=False)
    _confirm_sent(job, claimed)
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
    wanted = config.retry_publishers
    count = wanted if wanted is not None else min(4, os.cpu_count() or 1)
    if (count <= 1 or remaining < 4 * chunk_size or config.retry_chunk_delay
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
    delay = config.retry_chunk_delay
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
    chunk_size = config.retry_chunk_size
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
