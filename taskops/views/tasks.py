"""Task actions that are not tied to one worker: revoke and terminate."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import reverse

from taskops import services
from taskops.forms import RevokeForm
from taskops.views.common import run_action


def task_revoke(request: HttpRequest) -> HttpResponse:
    """Revoke a task; with the form's (cleaned) terminate, the service also needs task.terminate."""
    return run_action(
        request, action="task.revoke", form_class=RevokeForm,
        fallback=reverse("admin:taskops_worker_changelist"),
        perform=lambda actor, form: services.task_revoke(
            actor=actor, task_ids=[form.cleaned_data["task_id"]],
            terminate=form.cleaned_data["terminate"],
            signal=form.cleaned_data["signal"] or "SIGTERM", reason=form.cleaned_data["reason"]),
    )
