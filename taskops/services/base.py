"""What every console write shares: who acts, the permission check, the outcome, and its one audit entry."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NoReturn

from django.contrib.auth.models import AnonymousUser, User
from django.db import DatabaseError

from taskops import cache, control
from taskops.client_ip import client_ip
from taskops.connection import BrokerUnavailable
from taskops.masking import value_mask
from taskops.models import AuditEntry
from taskops.permissions import action_refusal, can
from taskops.storable import value_problem, value_scrubbed


class ActionRefused(ValueError):
    """The action was not attempted: not allowed, or its input is invalid or unconfirmed (message says why).

    `fields` says which input each part of the refusal is about ({"queue": "..."}), so a form
    can show it beside that field; empty when the refusal is about the action as a whole.
    """

    def __init__(self, message: str, fields: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.fields = fields or {}


class OutcomeNotRecorded(Exception):
    """The action took effect, but its outcome could not be written (its audit entry stays "started")."""

    def __init__(self, result: ActionOutcome, error: BaseException) -> None:
        super().__init__(f"{result.message} The console could not record this outcome ({error}); "
                         "the audit log shows the action as started.")
        self.result = result


@dataclass(frozen=True)
class Actor:
    """Who acts, and from where; user None is the console itself (worker hooks, job runners)."""

    user: User | AnonymousUser | None
    ip: str | None = None

    @classmethod
    def from_request(cls, request) -> Actor:
        return cls(user=request.user, ip=client_ip(request))

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


class AuditedAction:
    """One console action under way, and its one audit entry.

    The entry is written at the first of: a refusal (outcome refused), the intent (outcome
    started, written before the action takes effect, so a crash in between leaves a trace), or
    the outcome; once the intent is written, the outcome completes that same entry.
    """

    def __init__(self, actor: Actor, action: str, target: str = "", params: dict | None = None,
                 reason: str = "") -> None:
        self.actor = actor
        self.action = action
        self.target = target
        self.params = params if params is not None else {}
        self.reason = reason or ""
        self.entry_id: int | None = None

    def refuse(self, message: str, detail: dict | None = None, *,
               fields: dict[str, str] | None = None) -> NoReturn:
        """Record the refusal and raise ActionRefused (with `fields`: see there): nothing is done."""
        self.finish(ActionOutcome(AuditEntry.Outcome.REFUSED, message, detail or {}))
        raise ActionRefused(message, fields)

    def refuse_unless_allowed(self, *actions: str) -> None:
        """Refuse unless the person acting may do every one of `actions` (the console itself may)."""
        user = self.actor.user
        if user is None:
            return
        for action in actions or (self.action,):
            if not can(user, action):
                self.refuse(action_refusal(user, action))

    def refuse_without_reason(self, message: str, *, min_length: int = 1) -> None:
        """Refuse an action that needs a typed reason and got none (or too short a one)."""
        if reason_missing(self.reason, min_length):
            self.refuse(message)

    def refuse_unless_storable(self, **values: object) -> None:
        """Refuse, before anything is sent, values no database stores as JSON and no worker should
        get (NaN, infinity, NUL, a lone surrogate; named by keyword, e.g. args=...), the reason
        too; the refusal's entry keeps such parts as a note."""
        for name, value in {**values, "the reason": self.reason}.items():
            if problem := value_problem(value, name):
                self.params, self.reason = value_scrubbed(self.params), value_scrubbed(self.reason)
                self.target = value_scrubbed(self.target)
                self.refuse(f"Not sent: {problem}.")

    def intent(self) -> None:
        """Record that the action is about to take effect; call right before the side effect."""
        if self.entry_id is None:
            self.entry_id = AuditEntry.objects.create(
                **self._who_what(), outcome=AuditEntry.Outcome.STARTED,
                message="Started; no outcome was recorded (the console stopped or lost its "
                        "database before the action finished).",
            ).pk

    def finish(self, result: ActionOutcome) -> ActionOutcome:
        """Record the outcome (completing the intent's entry when there is one) and return it."""
        if self.entry_id is None:
            self.entry_id = AuditEntry.objects.create(
                **self._who_what(), outcome=result.outcome, message=result.message,
                detail=result.detail).pk
        else:
            try:
                AuditEntry.objects.finish(self.entry_id, outcome=result.outcome,
                                          message=result.message, detail=result.detail)
            except DatabaseError as exc:
                raise OutcomeNotRecorded(result, exc) from exc
        cache.drop(cache.LIVE_KEY)
        return result

    def broker_failed(self, exc: BrokerUnavailable, what: str, *, after: str = "") -> ActionOutcome:
        """Record (and return) that the broker did not answer while doing `what`."""
        return self.finish(ActionOutcome(
            AuditEntry.Outcome.FAILED,
            f"{what} failed: the broker did not answer ({exc}).{' ' + after if after else ''}"))

    def _who_what(self) -> dict:
        return {
            "actor": self.actor.db_user, "actor_name": self.actor.name, "source_ip": self.actor.ip,
            "action": self.action, "target": self.target[:255],
            "params": value_mask(self.params),  # kept as the console shows them: masked keys hidden
            "reason": self.reason,
        }


def audit_record(
    actor: Actor, action: str, target: str, params: dict, reason: str, result: ActionOutcome
) -> ActionOutcome:
    """Record an action that is over in one go (a refusal at the door, a login that failed)."""
    return AuditedAction(actor, action, target, params, reason).finish(result)


def reason_missing(reason: str | None, min_length: int = 1) -> bool:
    """True when no reason (of at least `min_length` characters, spaces aside) was typed."""
    return len((reason or "").strip()) < min_length


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
