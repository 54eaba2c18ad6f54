"""Task catalog pages: every registered task, one task with its run form, and sending a new run."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse

from taskops import selectors, services
from taskops.forms import TaskRunForm
from taskops.services import Actor
from taskops.views.common import outcome_perform, render_page, require
from taskops.web import post_only


def _detail(name: str) -> selectors.TaskDetail:
    detail = selectors.task_detail(name)
    if detail is None:
        raise Http404(f"No task named {name!r} is registered here or on a live worker.")
    return detail


def _run_form(detail: selectors.TaskDetail, data=None) -> TaskRunForm:
    return TaskRunForm(data, task_name=detail.name, parameters=detail.parameters,
                       initial={"queue": detail.routing.queue})


def _render_detail(request: HttpRequest, detail: selectors.TaskDetail, form: TaskRunForm):
    return render_page(request, "admin/taskops/task_detail.html", f"Task {detail.name}",
                       {"detail": detail, "form": form})


def task_catalog(request: HttpRequest) -> HttpResponse:
    require(request, "task.view")
    return render_page(request, "admin/taskops/task_catalog.html", "Task catalog",
                       {"catalog": selectors.task_catalog()})


def task_detail(request: HttpRequest, name: str) -> HttpResponse:
    require(request, "task.view")
    detail = _detail(name)
    return _render_detail(request, detail, _run_form(detail))


def task_run(request: HttpRequest, name: str) -> HttpResponse:
    """Send a new run from the form and go to its page; a form with errors is shown again, unsent."""
    if request.method != "POST":
        return post_only()
    require(request, "task.trigger")
    detail = _detail(name)
    form = _run_form(detail, request.POST)
    if not form.is_valid():
        messages.error(request, "Nothing was sent: correct the form below.")
        return _render_detail(request, detail, form)
    outcome = outcome_perform(request, lambda: services.task_send(
        actor=Actor.from_request(request), name=name, args=form.cleaned_data["args"],
        kwargs=form.cleaned_data["kwargs"], reason=form.cleaned_data["reason"],
        **form.send_options(),
    ), form=form)
    if outcome is None or not outcome.ok:
        return _render_detail(request, detail, form)
    return HttpResponseRedirect(reverse("admin:taskops_taskrun_detail", args=[outcome.detail["task_id"]]))
