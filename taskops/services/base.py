"""What every console write shares: who acts, the outcome, refusals, and the audit record."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.contrib.auth.models import AnonymousUser, User

from taskops import cache, control
from taskops.connection import BrokerUnavailable
from taskops.masking import value_mask
from taskops.models import AuditEntry

LIVE_CACHE_KEY = "taskops:cluster"


class ActionRefused(ValueError):
    """The action was not attempted: its input is invalid or unconfirmed (message says why)."""


@dataclass(frozen=True)
class Actor:
    """Who acts, and from where."""

    user: User | AnonymousUser | None
    ip: str | None = None

    @classmethod
    def from_request(cls, request) -> Actor:
        return cls(user=request.user, ip=request.META.get("REMOTE_ADDR") or None)

    @property
    def db_user(self) -> User | None:
        """The user to store on records, or None for the system and anonymous visitors."""
        return self.user if self.user is not None and self.user.is_authenticated else None

    @property
    def name(self) -> str:
        return self.db_user.get_username() if self.db_user else "system"


@dataclass(frozen=True)
class ActionOutcome:
    """What happened, in the words shown to the user, and the details kept in the audit log."""

    outcome: str
    message: str
    detail: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.outcome == AuditEntry.Outcome.OK


def audit_record(
    actor: Actor, action: str, target: str, params: dict, reason: str, result: ActionOutcome
) -> ActionOutcome:
    AuditEntry.objects.create(
        actor=actor.db_user,
        actor_name=actor.name,
        source_ip=actor.ip,
        action=action,
        target=target[:255],
        params=value_mask(params),  # kept as the console shows them: masked keys hidden
        reason=reason,
        outcome=result.outcome,
        message=result.message,
        detail=result.detail,
    )
    cache.drop(LIVE_CACHE_KEY)
    return result


def refused(actor: Actor, action: str, target: str, params: dict, reason: str, message: str):
    audit_record(actor, action, target, params, reason, ActionOutcome(AuditEntry.Outcome.REFUSED, message))
    raise ActionRefused(message)


def reason_missing(reason: str | None, min_length: int = 1) -> bool:
    """True when no reason (of at least `min_length` characters, spaces aside) was typed."""
    return len((reason or "").strip()) < min_length


def reason_required(
    actor: Actor, action: str, target: str, params: dict, reason: str, *, message: str,
    min_length: int = 1,
) -> None:
    """Refuse (audited) an action that needs a typed reason and got none."""
    if reason_missing(reason, min_length):
        refused(actor, action, target, params, reason, message)


def unavailable(exc: BrokerUnavailable, what: str) -> ActionOutcome:
    return ActionOutcome(
        AuditEntry.Outcome.FAILED, f"{what} failed: the broker did not answer ({exc}).", {}
    )


def names_text(names) -> str:
    return ", ".join(names) if names else "none"


def outcome_from_replies(result: control.CommandResult, done: str, *, none_answered: str) -> ActionOutcome:
    """Turn a command's replies into an outcome that names who answered, who failed, who was silent."""
    detail = {
        "replies": result.replies,
        "errors": result.errors,
        "missing": list(result.missing),
    }
    if not result.replies and not result.errors:
        return ActionOutcome(AuditEntry.Outcome.NO_REPLY, none_answered, detail)
    parts = [f"{done}: {names_text(sorted(result.replies))} answered."] if result.replies else []
    if result.errors:
        parts.append(
            "Refused by " + "; ".join(f"{w}: {e}" for w, e in sorted(result.errors.items())) + "."
        )
    if result.missing:
        parts.append(f"No reply from {names_text(result.missing)}.")
    outcome = AuditEntry.Outcome.OK
    if result.errors and not result.replies:
        outcome = AuditEntry.Outcome.FAILED
    elif result.errors or result.missing:
        outcome = AuditEntry.Outcome.PARTIAL
    return ActionOutcome(outcome, " ".join(parts), detail)


