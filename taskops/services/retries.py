"""Writes on task runs: faithful retry of one or many runs now, as captured or with edits."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.db import connection, transaction
from django.utils import timezone
from django_celery_results.models import TaskResult
from kombu.utils.json import dumps, loads

from taskops.capture import CapturedCall, NoCapture, call_from_meta
from taskops.connection import BrokerUnavailable
from taskops.masking import arguments_shown, stored_repr
from taskops.models import AuditEntry, RunRetry
from taskops.permissions import task_name_refusal
from taskops.publish import DeliveryUncertain, Send, calls_publish
from taskops.selectors.runs import latest_retries
from taskops.services.base import ActionOutcome, Actor, AuditedAction
from taskops.services.catalog import refuse_unless_sendable

# Runs that have finished; a queued or running run is revoked, not retried.
RETRYABLE_STATES = ("FAILURE", "REVOKED", "SUCCESS")
# Rows per statement when many rows are written at once (well under SQLite's 32,766 parameters).
SQL_ROWS = 1000
UNCERTAIN = ("Delivery is uncertain, so the retries stay linked to their runs (nobody sends them "
             "again by accident); a retry that never runs can be sent again from its run's page.")


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


def retry_plans(task_ids: list[str], *, include_succeeded: bool = False,
                user=None) -> dict[str, RetryPlan]:
    """Decide, for each run, whether it can be retried with its captured call (one query).

    A run that succeeded is refused unless `include_succeeded` (retrying it does its work
    again); a task `user` may not send (TASKOPS_TASK_DENY, TASKOPS_TASK_ALLOW) is refused.
    """
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
        if status == "SUCCESS" and not include_succeeded:
            plans[task_id] = RetryPlan(task_id, None, "the run succeeded: it is retried only when "
                                                      "runs that succeeded are chosen explicitly")
            continue
        call = call_from_meta(meta)
        plans[task_id] = (
            RetryPlan(task_id, None, call.reason) if isinstance(call, NoCapture)
            else RetryPlan(task_id, call, "", stored_repr(task_args), stored_repr(task_kwargs))
        )
    names = {plan.call.task for plan in plans.values() if plan.call is not None}
    refused_names = {name: why for name in names if (why := task_name_refusal(user, name))}
    for task_id, plan in plans.items():
        if plan.call is not None and plan.call.task in refused_names:
            plans[task_id] = RetryPlan(task_id, None, refused_names[plan.call.task])
    return plans


def retries_claim(sends: list[Send], *, user_id: int | None, job_id: int | None = None,
                  edited: bool = False, include_retried: bool = False,
                  again_after: dict[str, str] | None = None) -> tuple[list[Send], dict[str, str]]:
    """Link each retry to its run (RunRetry) before it is published: the claim on that run.

    A run retried already is skipped unless `include_retried`, or unless `again_after` names
    its latest retry ({run: retry id}: the person saw that retry and asked for another). Each
    claim takes an attempt number of its run (1 for a first retry, the latest + 1 for another);
    the database lets only one claim have it, so two people or jobs retrying the same run at
    once never both send it. One statement per SQL_ROWS sends, and a lookup of the runs' latest
    retries only when another retry is asked for or a claim was taken. Returns the sends
    claimed and, for each run skipped, why.
    """
    again_after = again_after or {}
    asked_again = include_retried or bool(again_after)
    latest = latest_retries([s.original_id for s in sends]) if asked_again else {}
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    rows, skipped = [], {}
    for send in sends:
        last = latest.get(send.original_id)
        if last is not None and not (include_retried
                                     or again_after.get(send.original_id) == last.retry_task_id):
            skipped[send.original_id] = f"retried already as {last.retry_task_id}"
            continue
        rows.append((send.original_id, send.task_id, send.call.task, now, user_id, job_id, edited,
                     last.attempt + 1 if last else 1))
    table = connection.ops.quote_name(RunRetry._meta.db_table)
    inserted: set[str] = set()
    for start in range(0, len(rows), SQL_ROWS):
        chunk = rows[start:start + SQL_ROWS]
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {table} (original_task_id, retry_task_id, task_name, requested_at, "
                "requested_by_id, job_id, edited, attempt) VALUES "
                + ", ".join(["(%s, %s, %s, %s, %s, %s, %s, %s)"] * len(chunk))
                + " ON CONFLICT DO NOTHING RETURNING retry_task_id",
                [value for row in chunk for value in row])
            inserted.update(retry_id for (retry_id,) in cursor.fetchall())
    taken = [original for original, retry_id, *_rest in rows if retry_id not in inserted]
    if taken:  # someone else has that attempt: say which retry
        now_latest = latest_retries(taken)
        skipped.update({original: f"retried already as {now_latest[original].retry_task_id}"
                        if original in now_latest else "retried already" for original in taken})
    return [s for s in sends if s.task_id in inserted], skipped


def retries_release(sends: list[Send]) -> None:
    """Withdraw the claims of retries that were surely not published (the broker was unreachable)."""
    RunRetry.objects.filter(retry_task_id__in=[s.task_id for s in sends]).delete()


def _publish_claimed(act: AuditedAction, claimed: list[Send]) -> ActionOutcome | None:
    """Publish claimed retries; on a broker failure, record it (and withdraw the claims of retries
    that surely did not go out) and return that outcome."""
    try:
        calls_publish(claimed)
    except DeliveryUncertain as exc:
        return act.broker_failed(exc, "Retry", after=UNCERTAIN)
    except BrokerUnavailable as exc:
        retries_release(claimed)
        return act.broker_failed(exc, "Retry")
    return None


def _refusal_text(refused: dict[str, str], heading: str = "Not retried") -> str:
    shown = "; ".join(f"{task_id}: {why}" for task_id, why in list(refused.items())[:5])
    more = f" (and {len(refused) - 5} more)" if len(refused) > 5 else ""
    return f"{heading}: {shown}{more}."


def _skipped_text(skipped: dict[str, str], *, one_run: bool) -> str:
    if one_run:
        why = next(iter(skipped.values()))
        return (f"Not retried: the run was {why}. To send another retry, confirm \"retry again\" "
                "on its page.")
    return _refusal_text(skipped, f"Skipped {len(skipped)} run{'s' if len(skipped) != 1 else ''} "
                                  "retried already (choose \"include runs already retried\" to send "
                                  "them again)")


def task_retry(*, actor: Actor, task_ids: list[str], reason: str = "",
               include_retried: bool = False, include_succeeded: bool = False,
               again_after: dict[str, str] | None = None) -> ActionOutcome:
    """Retry finished runs now, each with its captured call on its original queue and priority.

    Runs retried already are skipped unless `include_retried` or `again_after` names their
    latest retry (see retries_claim); runs that succeeded are refused unless
    `include_succeeded`. Each retry is linked to its run before it is published.
    """
    task_ids = list(dict.fromkeys(t.strip() for t in task_ids if t and t.strip()))
    again_after = {run: retry for run, retry in (again_after or {}).items() if retry}
    act = AuditedAction(actor, "task.retry", task_ids[0] if len(task_ids) == 1 else
                        f"{len(task_ids)} runs", {"task_ids": task_ids}, reason)
    act.refuse_unless_allowed("task.retry")
    plans = retry_plans(task_ids, include_succeeded=include_succeeded, user=actor.user)
    refused = {p.task_id: p.refusal for p in plans.values() if p.call is None}
    sends = [p.send(str(uuid.uuid4())) for p in plans.values() if p.call is not None]
    detail: dict = {"refused": refused}
    if not sends:
        return act.finish(ActionOutcome(AuditEntry.Outcome.REFUSED, _refusal_text(refused), detail))
    act.params.update({"retries": {s.original_id: s.task_id for s in sends},
                       **({"include_retried": True} if include_retried else {}),
                       **({"again_after": again_after} if again_after else {}),
                       **({"include_succeeded": True} if include_succeeded else {})})
    act.intent()
    with transaction.atomic():
        claimed, skipped = retries_claim(sends, user_id=actor.db_user.pk if actor.db_user else None,
                                         include_retried=include_retried, again_after=again_after)
    detail["skipped"] = skipped
    if not claimed:
        message = " ".join(filter(None, [_skipped_text(skipped, one_run=len(task_ids) == 1),
                                         _refusal_text(refused) if refused else ""]))
        return act.finish(ActionOutcome(AuditEntry.Outcome.REFUSED, message, detail))
    if failed := _publish_claimed(act, claimed):
        return failed
    detail["retries"] = {s.original_id: s.task_id for s in claimed}
    message = (f"Retried {len(claimed)} run{'s' if len(claimed) != 1 else ''} with the original "
               f"arguments and routing: " + ", ".join(
                   f"{s.original_id} → {s.task_id}" for s in claimed[:5])
               + (" …" if len(claimed) > 5 else "") + ".")
    if skipped:
        message += " " + _skipped_text(skipped, one_run=False)
    if refused:
        message += " " + _refusal_text(refused)
    outcome = AuditEntry.Outcome.PARTIAL if refused else AuditEntry.Outcome.OK
    return act.finish(ActionOutcome(outcome, message, detail))


def task_retry_edited(
    *, actor: Actor, task_id: str, call: CapturedCall, reason: str = "", again_after: str = ""
) -> ActionOutcome:
    """Send a run again with arguments or routing edited by the user (checked here as in the form).

    A run retried already is refused unless `again_after` is its latest retry (the person saw
    it and asked for another); the retry is linked to the run before it is published.
    """
    retry_id = str(uuid.uuid4())
    args, kwargs = arguments_shown(call.args, call.kwargs, call.sender_masked or ())
    act = AuditedAction(actor, "task.retry_edited", task_id, _jsonable({
        "task_id": task_id, "task": call.task, "args": args, "kwargs": kwargs,
        "queue": call.routing_key, "priority": call.priority, "retry": retry_id,
        **({"again_after": again_after} if again_after else {})}), reason)
    act.refuse_unless_storable(args=call.args, kwargs=call.kwargs)  # first: no other refusal could keep them
    act.refuse_unless_allowed("task.retry", "task.trigger")
    refuse_unless_sendable(act, name=call.task, queue=call.routing_key, priority=call.priority)
    act.intent()
    send = Send(retry_id, call, task_id)
    with transaction.atomic():
        claimed, skipped = retries_claim([send], user_id=actor.db_user.pk if actor.db_user else None,
                                         edited=True, again_after={task_id: again_after})
    if not claimed:
        act.refuse(_skipped_text(skipped, one_run=True), {"skipped": skipped},
                   fields={"again": f"This run was {skipped[task_id]}: tick to send another retry."})
    if failed := _publish_claimed(act, claimed):
        return failed
    return act.finish(ActionOutcome(
        AuditEntry.Outcome.OK, f"Sent {call.task} again with edited arguments as {retry_id}.",
        {"retry": retry_id}))


def _jsonable(value):
    """Arguments as the audit log keeps them (JSON with datetimes and UUIDs as strings)."""
    return loads(dumps(value), object_hook=None)
