"""Dangerous actions: a typed reason always, and with TASKOPS_REQUIRE_APPROVAL a second person's approval."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from taskops.conf import config
from taskops.models import AuditEntry, PendingAction
from taskops.permissions import READ_ONLY_REFUSAL, can
from taskops.services.base import ActionOutcome, ActionRefused, Actor, AuditedAction

MIN_REASON_LENGTH = 4

# action -> (console permission action, how to carry it out once approved).
# Each performer is called as perform(actor=<approver>, params=..., reason=..., approval=<row>).
_PERFORMERS: dict[str, tuple[str, Callable[..., ActionOutcome]]] = {}


def approvable(action: str, *, permission: str):
    """Register how an approved `action` is carried out (decorator on a performer function)."""

    def register(perform: Callable[..., ActionOutcome]) -> Callable[..., ActionOutcome]:
        _PERFORMERS[action] = (permission, perform)
        return perform

    return register


def approval_permission(action: str) -> str | None:
    """The console action whose permission an approver of `action` needs (None: not approvable)."""
    entry = _PERFORMERS.get(action)
    return entry[0] if entry else None


def dangerous_gate(act: AuditedAction, approval: PendingAction | None) -> ActionOutcome | None:
    """Let a dangerous action through (None), or stop it: refused without a reason, pending approval.

    Call in a dangerous service once its own checks passed, before it takes effect; `approval`
    is the approved request when the action is being carried out on approval.
    """
    if approval is not None:
        return None
    act.refuse_without_reason("This action needs a reason: type why you are doing it (it is kept "
                              "in the audit log).", min_length=MIN_REASON_LENGTH)
    if not config.require_approval:
        return None
    expires = timezone.now() + timedelta(minutes=config.approval_ttl_minutes)
    pending = PendingAction.objects.create(
        action=act.action, target=act.target[:255], params=act.params, reason=act.reason,
        requested_by=act.actor.db_user, requested_by_name=act.actor.name, expires_at=expires,
    )
    return act.finish(ActionOutcome(
        AuditEntry.Outcome.PENDING,
        f"Waiting for approval by a second person (request #{pending.pk}, expires "
        f"{timezone.localtime(expires):%Y-%m-%d %H:%M}).",
        {"approval_id": pending.pk},
    ))


def _requester_may(pending: PendingAction, permission: str) -> bool:
    """True when the person who asked still exists and may still do the action."""
    requester = pending.requested_by
    return requester is not None and can(requester, permission)


def approval_decide(*, actor: Actor, approval_id: int, approve: bool, reason: str = "") -> ActionOutcome:
    """Approve (and carry out) or reject a pending request; the approver must be someone else with its permission."""
    verb = "approve" if approve else "reject"
    with transaction.atomic():
        pending = PendingAction.objects.select_for_update().filter(pk=approval_id).first()
        if pending is None:
            raise ActionRefused(f"There is no approval request #{approval_id}.")
        permission, perform = _PERFORMERS.get(pending.action, ("", None))
        is_requester = actor.db_user is not None and actor.db_user.pk == pending.requested_by_id
        problem = ""
        if pending.state_now != pending.state:  # it expired unseen: record that now
            pending.state, pending.decided_at = pending.state_now, timezone.now()
            pending.save(update_fields=["state", "decided_at"])
        if config.read_only:
            problem = READ_ONLY_REFUSAL
        elif pending.state != PendingAction.State.PENDING:
            problem = f"Request #{pending.pk} is {pending.get_state_display().lower()}, not pending."
        elif approve and is_requester:
            problem = "You asked for this action: someone else must approve it."
        elif perform is None or not can(actor.user, permission):
            problem = "Only someone allowed to do this action may decide on it."
        elif approve and not _requester_may(pending, permission):
            problem = (f"{pending.requested_by_name} may no longer do this action, so it cannot be "
                       "carried out on their request: they must ask again.")
        else:
            pending.state = PendingAction.State.APPROVED if approve else PendingAction.State.REJECTED
            pending.decided_at = timezone.now()
            pending.decided_by = actor.db_user
            pending.decided_by_name = actor.name
            pending.save()
    act = AuditedAction(actor, f"approval.{verb}", f"#{pending.pk} {pending.action} {pending.target}",
                        {"approval_id": pending.pk}, reason)
    if problem:  # audited outside the transaction, so the refusal is kept
        act.refuse(problem)
    if not approve:
        return act.finish(ActionOutcome(AuditEntry.Outcome.OK, f"Rejected request #{pending.pk}."))
    act.finish(ActionOutcome(AuditEntry.Outcome.OK, f"Approved request #{pending.pk}."))
    try:
        outcome = perform(actor=actor, params=pending.params,
                          reason=f"{pending.reason} (asked by {pending.requested_by_name}, "
                                 f"approved by {actor.name})",
                          approval=pending)
    except ActionRefused as exc:
        outcome = ActionOutcome(AuditEntry.Outcome.REFUSED, str(exc))
    PendingAction.objects.filter(pk=pending.pk).update(outcome=outcome.outcome, message=outcome.message)
    return outcome


def approval_cancel(*, actor: Actor, approval_id: int) -> ActionOutcome:
    """The requester withdraws a pending request."""
    pending = PendingAction.objects.filter(pk=approval_id).first()
    if pending is None:
        raise ActionRefused(f"There is no approval request #{approval_id}.")
    act = AuditedAction(actor, "approval.cancel", f"#{pending.pk} {pending.action} {pending.target}",
                        {"approval_id": pending.pk})
    if actor.db_user is None or actor.db_user.pk != pending.requested_by_id:
        act.refuse("Only the person who asked may withdraw the request.")
    if config.read_only:
        act.refuse(READ_ONLY_REFUSAL)
    updated = PendingAction.objects.filter(pk=pending.pk, state=PendingAction.State.PENDING,
                                           expires_at__gt=timezone.now()).update(
        state=PendingAction.State.CANCELLED, decided_at=timezone.now(),
        decided_by=actor.db_user, decided_by_name=actor.name)
    if not updated:
        act.refuse(f"Request #{pending.pk} is no longer pending.")
    return act.finish(ActionOutcome(AuditEntry.Outcome.OK, f"Withdrew request #{pending.pk}."))
