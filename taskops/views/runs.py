"""Task run pages: one run in full (hidden values revealed on request), its retry (as it was, or edited), bulk retry jobs."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.cache import add_never_cache_headers

from taskops import selectors, services
from taskops.capture import CapturedCall
from taskops.forms import ReasonForm, RetryAgainForm, RetryEditForm
from taskops.services import Actor
from taskops.vocabulary import SIGNALS
from taskops.views.common import outcome_perform, render_page, require, run_action
from taskops.web import post_only


def run_url(task_id: str) -> str:
    return reverse("admin:taskops_taskrun_detail", args=[task_id])


def _edit_form(detail: selectors.RunDetail, data=None) -> RetryEditForm:
    call = detail.call
    initial = {
        "args": detail.edit_args,
        "kwargs": detail.edit_kwargs,
        "queue": (call.routing_key if call else "") or "default",
        "priority": call.priority if call else None,
    }
    return RetryEditForm(data, initial=initial, task_name=detail.run.task_name or "",
                         captured_args=call.args if call else None,
                         captured_kwargs=call.kwargs if call else None,
                         retried=detail.latest_retry)


def _render_detail(request: HttpRequest, detail: selectors.RunDetail, form: RetryEditForm):
    run = detail.run
    return render_page(
        request, "admin/taskops/run_detail.html", f"{run.task_name or 'Task'} run",
        {"detail": detail, "run": run, "edit_form": form, "signals": SIGNALS},
    )


def run_detail(request: HttpRequest, task_id: str) -> HttpResponse:
    require(request, "run.view")
    detail = selectors.run_detail(task_id)
    if detail is None:
        raise Http404(f"No run with id {task_id!r}.")
    return _render_detail(request, detail, _edit_form(detail))


def run_reveal(request: HttpRequest, task_id: str) -> HttpResponse:
    """POST only: the run page with its hidden values shown, in this response only, once audited."""
    if request.method != "POST":
        return post_only()
    require(request, "run.reveal")
    form = ReasonForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Nothing was revealed: " + " ".join(form.errors.get("reason", [])))
        return HttpResponseRedirect(run_url(task_id))
    try:
        outcome = services.run_reveal(actor=Actor.from_request(request), task_id=task_id,
                                      reason=form.cleaned_data["reason"])
    except services.ActionRefused as refusal:
        messages.error(request, f"Nothing was revealed: {refusal}")
        return HttpResponseRedirect(run_url(task_id))
    detail = selectors.run_detail(task_id, revealed=True)
    if detail is None:
        raise Http404(f"No run with id {task_id!r}.")
    messages.warning(request, outcome.message)
    response = _render_detail(request, detail, _edit_form(detail))
    add_never_cache_headers(response)  # never kept by a browser or a proxy
    return response


def run_retry(request: HttpRequest, task_id: str) -> HttpResponse:
    """Retry one run from its page (where its state and any earlier retry are shown)."""
    return run_action(
        request, action="task.retry", form_class=RetryAgainForm, fallback=run_url(task_id),
        perform=lambda actor, form: services.task_retry(
            actor=actor, task_ids=[task_id], reason=form.cleaned_data["reason"],
            include_succeeded=True, again_after={task_id: form.again_after_value}),
    )


def run_retry_edited(request: HttpRequest, task_id: str) -> HttpResponse:
    """Send the run again with the form's arguments; a form with errors is shown again, not sent."""
    if request.method != "POST":
        return post_only()
    require(request, "task.retry")
    detail = selectors.run_detail(task_id)
    if detail is None:
        raise Http404(f"No run with id {task_id!r}.")
    form = _edit_form(detail, request.POST)
    if not form.is_valid():
        messages.error(request, "Nothing was sent: correct the arguments below.")
        return _render_detail(request, detail, form)
    base = detail.call or CapturedCall(task=detail.run.task_name or "", args=[], kwargs={})
    outcome_perform(request, lambda: services.task_retry_edited(
        actor=Actor.from_request(request), task_id=task_id, call=form.call(base),
        reason=form.cleaned_data["reason"], again_after=form.again_after_value,
    ), form=form)
    if form.errors:  # refused for a part of it: shown again as typed, to be corrected
        return _render_detail(request, detail, form)
    return HttpResponseRedirect(run_url(task_id))


def retry_job(request: HttpRequest, job_id: int) -> HttpResponse:
    require(request, "run.view")
    detail = selectors.retry_job_detail(job_id)
    if detail is None:
        raise Http404(f"No retry job {job_id}.")
    return render_page(request, "admin/taskops/retry_job.html", f"Bulk retry job {job_id}",
                       {"detail": detail, "job": detail.job})


def retry_job_resume(request: HttpRequest, job_id: int) -> HttpResponse:
    return run_action(
        request, action="task.retry", form_class=ReasonForm,
        fallback=reverse("admin:taskops_taskrun_job", args=[job_id]),
        perform=lambda actor, form: services.retry_job_resume(
            actor=actor, job_id=job_id, reason=form.cleaned_data["reason"]),
    )
