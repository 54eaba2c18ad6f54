"""What every console view shares: page rendering in the admin, and running an audited action."""

from __future__ import annotations

from collections.abc import Callable

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.utils.http import url_has_allowed_host_and_scheme

from taskops.forms import ReasonForm
from taskops.permissions import can
from taskops.services import ActionOutcome, ActionRefused, Actor


def require(request: HttpRequest, action: str) -> None:
    """Refuse with 403 unless the user may perform `action`."""
    if not can(request.user, action):
        raise PermissionDenied(f"You may not {action.replace('.', ' ')}.")


def is_live(request: HttpRequest) -> bool:
    """A background refresh by the page's poller (it gets the page without consuming messages)."""
    return request.headers.get("X-TaskOps-Live") == "1"


def render_page(
    request: HttpRequest, template: str, title: str, context: dict, *, site=None
) -> TemplateResponse:
    site = site or admin.site
    return TemplateResponse(
        request,
        template,
        {
            **site.each_context(request),
            "title": title,
            "live_request": is_live(request),
            # {{ can.queue_pause }} in templates: they only hide what the server refuses anyway.
            "can": {action.replace(".", "_"): can(request.user, action) for action in _ACTIONS},
            **context,
        },
    )


_ACTIONS = (
    "queue.view", "queue.pause", "queue.purge", "worker.view", "worker.control",
    "worker.shutdown", "task.revoke", "task.terminate", "task.retry", "task.view", "task.trigger",
    "run.view", "run.reveal", "audit.view", "audit.export", "approval.view", "schedule.view",
    "schedule.export", "schedule.edit", "schedule.import", "schedule.run", "report.view",
    "report.export",
)


def _back(request: HttpRequest, fallback: str) -> HttpResponseRedirect:
    target = request.POST.get("next") or ""
    if not url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        target = fallback
    return HttpResponseRedirect(target or fallback)


def run_action(
    request: HttpRequest,
    *,
    action: str,
    form_class: type[ReasonForm],
    perform: Callable[[Actor, ReasonForm], ActionOutcome],
    fallback: str,
) -> HttpResponse:
    """POST only: check `action`, validate the form, run `perform`, flash its outcome, go back."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    require(request, action)
    form = form_class(request.POST)
    if not form.is_valid():
        problems = "; ".join(
            f"{field}: {' '.join(errors)}" if field != "__all__" else " ".join(errors)
            for field, errors in form.errors.items()
        )
        messages.error(request, f"Nothing was done: {problems}")
        return _back(request, fallback)
    try:
        outcome = perform(Actor.from_request(request), form)
    except ActionRefused as refused:
        messages.error(request, f"Nothing was done: {refused}")
        return _back(request, fallback)
    level = {
        "ok": messages.SUCCESS,
        "partial": messages.WARNING,
        "no_reply": messages.WARNING,
        "pending": messages.INFO,
    }.get(outcome.outcome, messages.ERROR)
    messages.add_message(request, level, outcome.message)
    return _back(request, fallback)
