"""Task actions that are not tied to one worker: revoke and terminate."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import reverse

from taskops import services
from taskops.forms import RevokeForm
from taskops.views.common import require, run_action


def task_revoke(request: HttpRequest) -> HttpResponse:
    terminate = request.POST.get("terminate") in ("on", "true", "1")
    if terminate and request.method == "POST":
        require(request, "task.terminate")
    return run_action(
        request, action="task.revoke", form_class=RevokeForm,
        fallback=reverse("admin:taskops_worker_changelist"),
        perform=lambda actor, form: services.task_revoke(
            actor=actor, task_ids=[form.cleaned_data["task_id"]],
            terminate=form.cleaned_data["terminate"],
            signal=form.cleaned_data["signal"] or "SIGTERM", reason=form.cleaned_data["reason"]),
    )
