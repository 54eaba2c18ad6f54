"""Approval of dangerous actions: decide on (or withdraw) a request another person made."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import reverse

from taskops import services
from taskops.forms import DecisionForm, ReasonForm
from taskops.views.common import run_action


def _detail_url(pk: int) -> str:
    return reverse("admin:taskops_pendingaction_change", args=[pk])


def approval_decide(request: HttpRequest, pk: int) -> HttpResponse:
    # Entry check: may see approvals; the service checks the action's own permission.
    return run_action(
        request, action="approval.view", form_class=DecisionForm, fallback=_detail_url(pk),
        perform=lambda actor, form: services.approval_decide(
            actor=actor, approval_id=pk, approve=form.cleaned_data["decision"] == "approve",
            reason=form.cleaned_data["reason"]),
    )


def approval_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    return run_action(
        request, action="approval.view", form_class=ReasonForm, fallback=_detail_url(pk),
        perform=lambda actor, form: services.approval_cancel(actor=actor, approval_id=pk),
    )
