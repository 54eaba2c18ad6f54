"""Audit entries for access refused before any action: 403s at a view, CSRF failures, failed logins (visitors' ones rate-capped)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.db import DatabaseError
from django.http import HttpRequest

from taskops import cache
from taskops.client_ip import client_ip
from taskops.conf import config
from taskops.models import AuditEntry
from taskops.services.base import ActionOutcome, Actor, audit_record

log = logging.getLogger(__name__)

REQUEST_REFUSED = "request.refused"
CSRF_FAILED = "request.csrf_failed"
LOGIN_FAILED = "login.failed"
# Written once a minute at most: visitors' refusals past the cap are not recorded one by one.
VISITORS_THROTTLED = "audit.visitors_throttled"

_local_counts: dict[int, int] = {}


@dataclass(frozen=True)
class Visitor(Actor):
    """Someone not logged in, at a web request: audit entries name them "anonymous", not "system"."""

    @property
    def name(self) -> str:
        return "anonymous"


def _actor(request: HttpRequest | None) -> Actor:
    user = getattr(request, "user", None)
    ip = client_ip(request) if request is not None else None
    if user is not None and user.is_authenticated:
        return Actor(user=user, ip=ip)
    return Visitor(user=None, ip=ip)


def _this_minute() -> int:
    return int(time.time() // 60)


def _visitor_count_this_minute() -> int:
    """How many visitors' refusals this minute has seen so far, this one included (all web processes)."""
    minute = _this_minute()
    shared = cache.counter_incr(f"taskops:visitor-refusals:{minute}", timeout=120)
    if shared is not None:
        return shared
    # The shared cache is down: count in this process (the cap then holds per process).
    for old in [m for m in _local_counts if m != minute]:
        del _local_counts[old]
    _local_counts[minute] = _local_counts.get(minute, 0) + 1
    return _local_counts[minute]


def _record(actor: Actor, action: str, target: str, params: dict, message: str, detail: dict) -> None:
    """Write the refusal; a visitor's only while this minute's cap allows (one note when it is reached).

    A database error is logged, never raised: the refusal itself (403, login form) still answers.
    """
    try:
        _record_capped(actor, action, target, params, message, detail)
    except DatabaseError:
        log.exception("could not audit %s of %s", action, actor.name)


def _record_capped(actor: Actor, action: str, target: str, params: dict, message: str,
                   detail: dict) -> None:
    if actor.db_user is None:
        count = _visitor_count_this_minute()
        cap = config.audit_visitor_refusals_per_minute
        if count == cap + 1:
            log.warning("more than %d refusals of visitors this minute: the rest are not audited", cap)
            audit_record(actor, VISITORS_THROTTLED, "", {}, "", ActionOutcome(
                AuditEntry.Outcome.REFUSED,
                f"More than {cap} failed logins and refused requests of visitors who are not logged "
                "in this minute: the rest of this minute's are not recorded one by one."))
        if count > cap:
            return
    audit_record(actor, action, target, params, "",
                 ActionOutcome(AuditEntry.Outcome.REFUSED, message, detail))


def request_refused_record(*, request: HttpRequest, message: str) -> None:
    """A view answered 403 (PermissionDenied): who, from where, which view and address."""
    match = getattr(request, "resolver_match", None)
    _record(_actor(request), REQUEST_REFUSED, match.view_name if match else request.path,
            {"method": request.method, "path": request.path[:1000]},
            message or "Permission denied.", {})


def csrf_failure_record(*, request: HttpRequest, reason: str) -> None:
    """A POST without a valid CSRF token (a forged form, or a page left open across a new login)."""
    _record(_actor(request), CSRF_FAILED, request.path[:255],
            {"method": request.method, "path": request.path[:1000]},
            f"Refused: the form's CSRF check failed ({reason}).", {})


def login_failed_record(*, request: HttpRequest | None, username: str) -> None:
    """A failed login: the username typed and where from (the password is never kept)."""
    locked_out = bool(getattr(request, "axes_locked_out", False))
    message = ("Login refused: locked out after repeated failures." if locked_out
               else "Login failed: wrong username or password.")
    _record(_actor(request), LOGIN_FAILED, username[:150],
            {"username": username[:150], "path": request.path[:1000] if request else ""},
            message, {"locked_out": locked_out})


def login_failed_receiver(sender, credentials: dict, request: HttpRequest | None = None, **kwargs) -> None:
    """django.contrib.auth's user_login_failed signal → login_failed_record."""
    username = credentials.get(get_user_model().USERNAME_FIELD) or credentials.get("username") or ""
    login_failed_record(request=request, username=str(username))
