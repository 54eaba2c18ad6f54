"""The console's middleware: NUL characters refused, a CSP, session timeouts, bounded database waits (and sessions kept through them), refusals audited, forms too large answered."""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.sessions.exceptions import SessionInterrupted
from django.contrib.sessions.middleware import SessionMiddleware
from django.core.exceptions import (
    PermissionDenied,
    RequestDataTooBig,
    TooManyFieldsSent,
    TooManyFilesSent,
)
from django.db import connection
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import render
from django.utils.http import url_has_allowed_host_and_scheme

from taskops.conf import config
from taskops.db_timeout import request_bounds, trouble_kind
from taskops.services.access import request_refused_record
from taskops.views.common import render_page
from taskops.web import is_live

log = logging.getLogger(__name__)

SESSION_STARTED = "taskops.session_started"
SESSION_SEEN = "taskops.session_seen"
# The last request is noted at most once a minute: one session write a minute per active user.
SEEN_GRANULARITY_SECONDS = 60


class RejectNulMiddleware:
    """A NUL in a URL would reach a database query and fail there as a 500; answer 400 instead."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest):
        if "\x00" in request.path or "%00" in request.META.get("QUERY_STRING", ""):
            return HttpResponseBadRequest("The address contains a NUL character.",
                                          content_type="text/plain; charset=utf-8")
        return self.get_response(request)


class ContentSecurityPolicyMiddleware:
    """Adds TASKOPS_CONTENT_SECURITY_POLICY to every response that has none of its own.

    Django's debug pages (DEBUG only) are left without it: they are built with inline styles
    and scripts, and a developer reading a traceback needs them to work.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if settings.DEBUG and response.status_code in (404, 500):
            return response
        if "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = config.content_security_policy
        return response


def _session_ended(request: HttpRequest, now: float) -> str | None:
    """Why the logged-in user's session is over (too old, or idle too long), or None."""
    started = request.session.get(SESSION_STARTED)
    seen = request.session.get(SESSION_SEEN, started)
    if started is None:
        return None
    if now - started > config.session_max_hours * 3600:
        return f"Your session ended {config.session_max_hours:g} hours after you logged in. Log in again."
    if now - seen > config.session_idle_minutes * 60:
        return (f"Your session ended after {config.session_idle_minutes:g} minutes without "
                "activity. Log in again.")
    return None


class SessionTimeoutMiddleware:
    """Logs a user out TASKOPS_SESSION_MAX_HOURS after the login or TASKOPS_SESSION_IDLE_MINUTES after their last request.

    A page's background refresh (live.js) is not activity: an unattended dashboard ends too.
    Comes after the session, authentication and message middleware.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.user.is_authenticated:
            now = time.time()
            ended = _session_ended(request, now)
            if ended:
                logout(request)
                messages.info(request, ended, fail_silently=True)
            elif SESSION_STARTED not in request.session:
                request.session[SESSION_STARTED] = request.session[SESSION_SEEN] = now
            elif not is_live(request) and (
                now - request.session.get(SESSION_SEEN, 0) >= SEEN_GRANULARITY_SECONDS
            ):
                request.session[SESSION_SEEN] = now
        return self.get_response(request)


class RefusalAuditMiddleware:
    """Writes one audit entry (outcome refused) for each request a view refuses with PermissionDenied (403)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> None:
        if isinstance(exception, PermissionDenied):
            request_refused_record(request=request, message=str(exception))
        return None  # Django answers 403 as usual


class StatementTimeoutMiddleware:
    """Bounds the database waits of each web request; past a bound, a page says so (503), not a 500.

    PostgreSQL: each statement may run TASKOPS_DB_STATEMENT_TIMEOUT_MS and wait
    TASKOPS_DB_LOCK_TIMEOUT_MS for a lock; SQLite: a write waits TASKOPS_DB_LOCK_TIMEOUT_MS for
    another process's lock (its busy timeout). Slow or refused statements are remembered for the
    pages' banner (taskops.db_timeout). Only web requests get these bounds (workers, beat and
    management commands never pass through here). Goes before the session middleware, so the
    session's own queries are bounded too.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        with request_bounds(connection, statement_ms=config.db_statement_timeout_ms,
                            lock_ms=config.db_lock_timeout_ms):
            return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        kind = trouble_kind(exception)
        if kind is None:
            return None
        limit = config.db_statement_timeout_ms if kind == "stopped" else config.db_lock_timeout_ms
        return render(request, "admin/taskops/statement_timeout.html", {
            "title": "The database took too long" if kind == "stopped" else "The database is busy",
            "kind": kind,
            "seconds": f"{limit / 1000:g}",
            "posted": request.method == "POST",
        }, status=503)


class BusyTolerantSessionMiddleware(SessionMiddleware):
    """Django's session middleware, except that a session the database is too busy to save is left as it was.

    A session changes now and then after the view is done (the once-a-minute "last seen" of
    SessionTimeoutMiddleware, messages too long for their cookie); with the database locked past
    TASKOPS_DB_LOCK_TIMEOUT_MS, Django would answer that request 400 ("the session was deleted").
    The page is served instead, with the database banner; the session is saved by a later request.
    """

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        try:
            return super().process_response(request, response)
        except SessionInterrupted as exc:
            if trouble_kind(exc) is None:
                raise
            log.warning("session of %s not saved: the database is busy", request.path)
            return response


class FormTooLargeMiddleware:
    """A POST past DATA_UPLOAD_MAX_MEMORY_SIZE (or the field and file counts) gets a page that says
    so and that nothing was done (413), instead of Django's bare 400.

    The form is read here, just before CsrfViewMiddleware would read it (place this middleware
    right before it); views exempt from CSRF, which may read the raw body, are left alone.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest):
        return self.get_response(request)

    def process_view(self, request: HttpRequest, view_func, view_args, view_kwargs):
        if request.method != "POST" or getattr(view_func, "csrf_exempt", False):
            return None
        try:
            request.POST  # noqa: B018 - parsing is the check
        except (RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent) as exc:
            return form_too_large_page(request, exc)
        return None


def form_too_large_page(request: HttpRequest, exc: Exception) -> HttpResponse:
    """The page answering a form Django refused to read (413): which limit, and nothing was done."""
    if isinstance(exc, RequestDataTooBig):
        limit = f"{settings.DATA_UPLOAD_MAX_MEMORY_SIZE / 2**20:.1f} MB of form data"
    elif isinstance(exc, TooManyFieldsSent):
        limit = f"{settings.DATA_UPLOAD_MAX_NUMBER_FIELDS:,} fields"
    else:
        limit = f"{settings.DATA_UPLOAD_MAX_NUMBER_FILES:,} files"
    back = request.META.get("HTTP_REFERER", "")
    if not url_has_allowed_host_and_scheme(back, {request.get_host()}, request.is_secure()):
        back = ""
    response = render_page(request, "admin/taskops/form_too_large.html", "The form was too large",
                           {"limit": limit, "back": back})
    response.status_code = 413
    return response
