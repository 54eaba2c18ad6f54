"""What every console view shares: page rendering in the admin, and running an audited action."""

from __future__ import annotations

from collections.abc import Callable

from django.contrib import admin, messages
from django.forms import Form
from django.db import DatabaseError
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.utils.http import url_has_allowed_host_and_scheme

from taskops.db_timeout import trouble_kind
from taskops.forms import ReasonForm
from taskops.permissions import ACTION_PERMISSIONS, can
from taskops.services import ActionOutcome, ActionRefused, Actor, OutcomeNotRecorded
from taskops.web import is_live, post_only


def require(request: HttpRequest, action: str) -> None:
    """Refuse with 403 unless the user may perform `action`."""
    if not can(request.user, action):
        raise PermissionDenied(f"You may not {action.replace('.', ' ')}.")


def render_page(
    request: HttpRequest, template: str, title: str, context: dict, *, site=None
) -> TemplateResponse:
    # The site whose URL led here (set by admin.pages.site_view); a middleware's page, outside
    # any admin site's URLs, uses the default one.
    site = site or getattr(request, "admin_site", None) or admin.site
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


_ACTIONS = tuple(ACTION_PERMISSIONS)


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
        return post_only()
    require(request, action)
    form = form_class(request.POST)
    if not form.is_valid():
        problems = "; ".join(
            f"{field}: {' '.join(errors)}" if field != "__all__" else " ".join(errors)
            for field, errors in form.errors.items()
        )
        messages.error(request, f"Nothing was done: {problems}")
        return _back(request, fallback)
    outcome_perform(request, lambda: perform(Actor.from_request(request), form))
    return _back(request, fallback)


# How each outcome is shown: done is a success, partly done or unanswered a warning, waiting
# for approval information; failed and refused are errors.
OUTCOME_LEVELS = {
    "ok": messages.SUCCESS,
    "partial": messages.WARNING,
    "no_reply": messages.WARNING,
    "pending": messages.INFO,
}


def outcome_message(request: HttpRequest, outcome: ActionOutcome, text=None) -> None:
    """Flash an action's outcome (or `text` about it) at the level its kind of outcome deserves."""
    messages.add_message(request, OUTCOME_LEVELS.get(outcome.outcome, messages.ERROR),
                         outcome.message if text is None else text)


def outcome_perform(
    request: HttpRequest, perform: Callable[[], ActionOutcome],
    shown: Callable[[ActionOutcome], str] | None = None, *, form: Form | None = None,
) -> ActionOutcome | None:
    """Run a service call and flash what came of it: its outcome, a refusal, or a database failure.

    `shown` words a successful outcome (say, with links); returns the outcome, or None when
    nothing (or nothing recorded) came back. With `form` (shown again by the caller), each
    part of a refusal goes beside the field it is about.
    """
    try:
        outcome = perform()
    except ActionRefused as refused:
        if form is not None and refused.fields:
            for name, problem in refused.fields.items():
                form.add_error(name if name in form.fields else None, problem)
            messages.error(request, "Nothing was sent: correct the form below.")
        else:
            messages.error(request, f"Nothing was done: {refused}")
        return None
    except OutcomeNotRecorded as unrecorded:
        messages.warning(request, str(unrecorded))
        return None
    except DatabaseError as exc:
        busy = {"locked": "it is locked by another process; try again in a moment",
                "stopped": "a query took too long and was stopped"}.get(trouble_kind(exc), str(exc))
        messages.error(request, f"Nothing was done: the console's database did not answer ({busy}).")
        return None
    outcome_message(request, outcome, shown(outcome) if shown and outcome.ok else None)
    return outcome
