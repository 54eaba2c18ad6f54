"""Schedule pages: the editor with its live preview, versions and restore, run now, clone, delete."""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html
from django_celery_beat.models import PeriodicTask

from taskops.forms import ReasonForm
from taskops.permissions import can
from taskops.schedules.definitions import definition_of
from taskops.schedule_forms import PREVIEW_FIELDS, PeriodicTaskForm, SchedulePreviewForm
from taskops.selectors import schedules as selectors
from taskops.services import ActionRefused, Actor
from taskops.services import schedules as services
from taskops.views.common import outcome_perform, render_page, require, run_action
from taskops.web import post_only

VERSIONS_PER_PAGE = 50


def list_url() -> str:
    return reverse("admin:django_celery_beat_periodictask_changelist")


def edit_url(pk: int) -> str:
    return reverse("admin:django_celery_beat_periodictask_change", args=[pk])


def _form(data, *, task: PeriodicTask | None, names: selectors.TaskNames,
          initial: dict | None = None) -> PeriodicTaskForm:
    return PeriodicTaskForm(data, initial=initial, task_names=names.names,
                            names_complete=names.complete, instance=task)


def _render_edit(request: HttpRequest, *, task: PeriodicTask | None, form: PeriodicTaskForm,
                 names: selectors.TaskNames, site) -> TemplateResponse:
    editable = can(request.user, "schedule.edit")
    if not editable:
        for field in form.fields.values():
            field.disabled = True
    preview_form = SchedulePreviewForm(
        {k: v for k, v in form.data.items()} if form.is_bound else
        {**{k: v for k, v in form.initial.items() if v is not None}, "pk": task.pk if task else ""})
    runs = selectors.schedule_runs([task.name])[task.name] if task else []
    last_run_at = selectors.edit_last_run_at(task)
    return render_page(request, "admin/taskops/schedule_form.html",
                       task.name if task else "Add a periodic task", {
                           "task": task, "form": form, "names": names, "runs": runs,
                           "editable": editable, "opts": PeriodicTask._meta,
                           "preview": preview_form.preview(last_run_at=last_run_at),
                           "preview_fields": PREVIEW_FIELDS,
                       }, site=site)


def schedule_edit(request: HttpRequest, task: PeriodicTask | None, *, site=None) -> HttpResponse:
    """Add (task None) or edit a schedule; readers see it read-only. A save needs a typed reason."""
    require(request, "schedule.view" if task is not None else "schedule.edit")
    site = site or getattr(request, "admin_site", None) or admin.site
    names = selectors.task_names()
    current = definition_of(task) if task else None
    if request.method != "POST":
        initial = PeriodicTaskForm.initial_from(current)
        initial["based_on"] = selectors.definition_fingerprint(current) if task else ""
        return _render_edit(request, task=task, form=_form(None, task=task, names=names,
                                                           initial=initial), names=names, site=site)
    require(request, "schedule.edit")
    form = _form(request.POST, task=task, names=names)
    if not form.is_valid():
        messages.error(request, "Nothing was saved: correct the form below.")
        return _render_edit(request, task=task, form=form, names=names, site=site)
    try:
        outcome = services.schedule_save(
            actor=Actor.from_request(request), definition=form.definition(), task=task,
            reason=form.cleaned_data["reason"], based_on=form.cleaned_data.get("based_on") or "",
            task_forced=bool(form.cleaned_data.get("task_forced")) and form.task_unknown)
    except ActionRefused as refusal:
        form.add_error(None, str(refusal))
        messages.error(request, "Nothing was saved: correct the form below.")
        return _render_edit(request, task=task, form=form, names=names, site=site)
    messages.success(request, outcome.message)
    if "_continue" in request.POST:
        return HttpResponseRedirect(edit_url(outcome.detail["id"]))
    return HttpResponseRedirect(list_url())


def schedule_preview(request: HttpRequest) -> HttpResponse:
    """GET: the next fire times of the schedule in the query string, as an HTML fragment."""
    require(request, "schedule.view")
    form = SchedulePreviewForm(request.GET)
    last_run_at = selectors.schedule_last_run_at(request.GET.get("pk"))
    return TemplateResponse(request, "admin/taskops/_schedule_preview.html",
                            {"preview": form.preview(last_run_at=last_run_at)})


def _versions_page(request: HttpRequest, *, title: str, versions, task: PeriodicTask | None,
                   name: str, site) -> TemplateResponse:
    page = Paginator(versions, VERSIONS_PER_PAGE).get_page(request.GET.get("page"))
    return render_page(request, "admin/taskops/schedule_versions.html", title, {
        "task": task, "name": name, "page": page, "rows": selectors.version_rows(list(page)),
        "opts": PeriodicTask._meta,
    }, site=site)


def schedule_history(request: HttpRequest, task: PeriodicTask, *, site=None) -> TemplateResponse:
    """Every version of one schedule, newest first, each with its diff and a restore form."""
    require(request, "schedule.view")
    return _versions_page(request, title=f"Versions of {task.name}", task=task, name=task.name,
                          versions=selectors.schedule_versions(task=task), site=site)


def schedule_versions(request: HttpRequest) -> TemplateResponse:
    """Recent versions of every schedule (?name= for one name), deleted schedules included."""
    require(request, "schedule.view")
    name = request.GET.get("name", "").strip()
    return _versions_page(request, title=f"Versions of {name}" if name else "Schedule changes",
                          task=None, name=name, versions=selectors.schedule_versions(name=name),
                          site=None)


def schedule_restore(request: HttpRequest, version_id: int) -> HttpResponse:
    return run_action(
        request, action="schedule.edit", form_class=ReasonForm,
        fallback=reverse("admin:taskops_schedule_versions"),
        perform=lambda actor, form: services.schedule_restore(
            actor=actor, version_id=version_id, reason=form.cleaned_data["reason"]),
    )


def _missing(request: HttpRequest, object_id: int) -> HttpResponseRedirect | None:
    """Back to the list with a message when there is no schedule `object_id`."""
    if PeriodicTask.objects.filter(pk=object_id).exists():
        return None
    messages.error(request, f"There is no schedule {object_id}: nothing was done.")
    return HttpResponseRedirect(list_url())


def schedule_clone(request: HttpRequest, object_id: int) -> HttpResponse:
    """POST: copy the schedule (disabled) and open the copy."""
    if request.method != "POST":
        return post_only()
    require(request, "schedule.edit")
    form = ReasonForm(request.POST)
    back = edit_url(object_id)
    if not form.is_valid():
        messages.error(request, f"Nothing was cloned: {' '.join(form.errors.get('reason', []))}")
        return HttpResponseRedirect(back)
    if missing := _missing(request, object_id):
        return missing
    try:
        outcome = services.schedule_clone(actor=Actor.from_request(request), task_ids=[object_id],
                                          reason=form.cleaned_data["reason"])
    except ActionRefused as refusal:
        messages.error(request, f"Nothing was cloned: {refusal}")
        return HttpResponseRedirect(back)
    messages.success(request, outcome.message)
    clones = list(outcome.detail["clones"].values())
    return HttpResponseRedirect(edit_url(clones[0]["id"]) if clones else back)


def run_message(outcome) -> str:
    """The outcome of a run now, linking each new run to its page."""
    runs = outcome.detail.get("runs") or (
        {"": outcome.detail["task_id"]} if outcome.detail.get("task_id") else {})
    if not runs:
        return outcome.message
    links = format_html(", ".join(["{}"] * len(runs)), *[
        format_html('<a href="{}" data-run-link>{}</a>',
                    reverse("admin:taskops_taskrun_detail", args=[task_id]),
                    f"{name}: {task_id}" if name else task_id)
        for name, task_id in runs.items()])
    return format_html("{} Follow the run: {}.", outcome.message, links)


def schedule_run(request: HttpRequest, object_id: int) -> HttpResponse:
    """POST: send the schedule's task now, as beat would; the message links to the run."""
    if request.method != "POST":
        return post_only()
    require(request, "schedule.run")
    back = edit_url(object_id)
    form = ReasonForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"Nothing was run: {' '.join(form.errors.get('reason', []))}")
        return HttpResponseRedirect(back)
    if missing := _missing(request, object_id):
        return missing
    outcome_perform(request, lambda: services.schedule_run_now(
        actor=Actor.from_request(request), task_ids=[object_id], reason=form.cleaned_data["reason"]),
        shown=run_message)
    return HttpResponseRedirect(back)


def schedule_delete(request: HttpRequest, task: PeriodicTask, *, site=None) -> HttpResponse:
    """GET: confirm with a reason; POST: delete (the versions keep it, so it can be restored)."""
    require(request, "schedule.edit")
    form = ReasonForm(request.POST if request.method == "POST" else None)
    form.fields["reason"].required = True
    if request.method == "POST" and form.is_valid():
        try:
            outcome = services.schedule_delete(actor=Actor.from_request(request), task=task,
                                               reason=form.cleaned_data["reason"])
        except ActionRefused as refusal:
            form.add_error("reason", str(refusal))
        else:
            messages.success(request, outcome.message)
            return HttpResponseRedirect(list_url())
    return render_page(request, "admin/taskops/schedule_delete.html", f"Delete {task.name}",
                       {"task": task, "form": form, "opts": PeriodicTask._meta}, site=site)
