"""Task runs in the admin: search and filter the results, retry selected or all matching runs."""

from __future__ import annotations

import copy
import functools
import itertools

from celery import states as celery_states
from django import forms
from django.contrib import admin, messages
from django.contrib.admin import DateFieldListFilter, SimpleListFilter, helpers
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.templatetags import admin_list
from django.contrib.admin.views.main import ORDER_VAR
from django.core.exceptions import FieldError, ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import conditional_escape, escape
from django.utils.safestring import mark_safe
from django.utils.http import urlencode
from django_celery_beat.models import PeriodicTask
from django_celery_results.admin import GroupResultAdmin as StockGroupResultAdmin
from django_celery_results.models import GroupResult

from taskops import selectors, services
from taskops.admin.pages import (
    DeclaredFiltersChangeList,
    DeclaredFiltersMixin,
    ReadOnlyConsoleAdmin,
    ReasonActionForm,
    site_view,
)
from taskops.conf import celery_app, config
from taskops.forms import RetryMatchingForm
from taskops.models import TaskRun, WorkerSeen
from taskops.paginators import (
    CURSOR_PARAMS,
    NEWER,
    OLDER,
    CappedCountPaginator,
    Cursor,
    keyset_page,
)
from taskops.permissions import can
from taskops.selectors.runs import RunQueue, run_queue_names
from taskops.services import Actor
from taskops.views import runs as run_views
from taskops.views.common import outcome_perform, render_page, require
from taskops.web import post_only

STATE_CLASS = {"SUCCESS": "ok", "FAILURE": "bad", "REVOKED": "bad", "RETRY": "warn", "STARTED": "warn"}


class ValueFilter(SimpleListFilter):
    """Filter on one column, choices from a small source, never a DISTINCT over the results.

    The chosen value is always a choice: a filter whose value is not among its choices (a
    schedule deleted since, a worker aged out) would otherwise be dropped by the admin and
    show every run.
    """

    field = ""

    def values(self) -> list[str]:
        raise NotImplementedError

    def lookups(self, request, model_admin):
        names = set(self.values())
        if self.value():
            names.add(self.value())
        return [(n, n) for n in sorted(names)]

    def queryset(self, request, queryset):
        if not self.value():
            return queryset
        if "\x00" in self.value():  # no stored value has one; PostgreSQL refuses the query
            raise IncorrectLookupParameters(f"no {self.title} has that name")
        return queryset.filter(**{self.field: self.value()})


class StateFilter(ValueFilter):
    title, parameter_name, field = "state", "status__exact", "status"  # the admin's own name

    def values(self) -> list[str]:
        return list(celery_states.ALL_STATES)


class TaskNameFilter(ValueFilter):
    """Tasks known to the app and the workers."""

    title, parameter_name, field = "task", "task_name", "task_name"

    def values(self) -> list[str]:
        return [n for n in celery_app().tasks if not n.startswith("celery.")]


class WorkerFilter(ValueFilter):
    title, parameter_name, field = "worker", "worker", "worker"

    def values(self) -> list[str]:
        return list(WorkerSeen.objects.values_list("name", flat=True))


class QueueFilter(ValueFilter):
    """Queues from the configuration and the workers seen; the captured routing key, through
    the expression migration 0008 indexes."""

    title, parameter_name, field = "queue", "queue", "run_queue"

    def values(self) -> list[str]:
        return run_queue_names()


class PeriodicFilter(ValueFilter):
    title, parameter_name, field = "periodic task", "periodic_task_name", "periodic_task_name"

    def values(self) -> list[str]:
        return list(PeriodicTask.objects.values_list("name", flat=True))


class RunChangeList(DeclaredFiltersChangeList):
    """The admin's change list, paged by key past its first pages.

    In the default order (newest first) every page also links to the runs just older than its
    last one (`?before=<date_done>,<id>`), and a keyset page links to the newer ones too: an
    index range scan that costs the same at any depth, where an OFFSET reads every row it
    skips. Numbered pages stay for the first COUNT_CAP rows. Every other link of the list
    (filters, search, sorting, page numbers) starts again from the newest run.
    """

    older_url = newer_url = newest_url = jump_value = ""
    keyset = False
    jump_fields: list[tuple[str, str]] | None = None  # None: no jump (another order is chosen)
    own_parameters = CURSOR_PARAMS

    def __init__(self, request, *args, **kwargs):
        super().__init__(request, *args, **kwargs)
        for name in CURSOR_PARAMS:  # not kept by the search form's hidden fields
            self.params.pop(name, None)

    def get_query_string(self, new_params=None, remove=None):
        new_params = {**{name: None for name in CURSOR_PARAMS}, **(new_params or {})}
        return super().get_query_string(new_params, remove)

    def get_ordering(self, request, queryset):
        ordering = super().get_ordering(request, queryset)
        if ordering and ordering[0] == "date_done":  # oldest first: the index read backwards
            return ["date_done", "pk"]
        return ordering

    def _cursor(self, request) -> Cursor | None:
        if self.params.get(ORDER_VAR):
            return None  # keyset pages follow the default order only
        for direction in CURSOR_PARAMS:
            if request.GET.get(direction):
                try:
                    return Cursor.parse(direction, request.GET[direction])
                except ValueError as exc:
                    raise IncorrectLookupParameters(f"bad page position: {exc}") from exc
        return None

    def get_results(self, request):
        cursor = self._cursor(request)
        if not self.params.get(ORDER_VAR):
            # The jump to a date keeps the filters and the search, and starts a keyset page.
            self.jump_fields = [(name, value) for name, values in self.filter_params.items()
                                if name not in (*CURSOR_PARAMS, ORDER_VAR) for value in values]
            if cursor is not None:
                self.jump_value = timezone.localtime(cursor.when).strftime("%Y-%m-%dT%H:%M:%S")
        if cursor is None:
            super().get_results(request)
            self.result_list = list(self.result_list)
            more = (self.multi_page and not (self.show_all and self.can_show_all)
                    and (self.paginator.capped or self.page_num < self.paginator.num_pages))
            if more and not self.params.get(ORDER_VAR) and self.result_list:
                self.older_url = self._page_url(Cursor.of(OLDER, self.result_list[-1]))
            return
        self.paginator = self.model_admin.get_paginator(request, self.queryset, self.list_per_page)
        rows, more = keyset_page(self.queryset, cursor, self.list_per_page)
        self.result_list, self.keyset = rows, True
        self.result_count = self.paginator.count
        self.full_result_count = None
        self.show_full_result_count = False
        self.show_admin_actions = True
        self.can_show_all = self.multi_page = False
        self.newest_url = self.get_query_string()
        if rows:
            older = more if cursor.direction == OLDER else True  # we came from the older ones
            newer = more if cursor.direction == NEWER else True
            self.older_url = self._page_url(Cursor.of(OLDER, rows[-1])) if older else ""
            self.newer_url = self._page_url(Cursor.of(NEWER, rows[0])) if newer else ""

    def _page_url(self, cursor: Cursor) -> str:
        return self.get_query_string({cursor.direction: cursor.value})

    def result_table(self) -> dict:
        """The context of the admin's change_list_results.html, its rows built in one pass.

        Every column of the run list is a method of its admin, so a cell is that method's
        value, escaped unless it is safe, in the admin's own `<td class="field-...">`. The
        admin's generic cell code (field lookups, per-cell format_html) was a third of the
        page's time (docs/benchmarks.md).
        """
        headers = list(admin_list.result_headers(self))
        columns = [("action-checkbox" if name == "action_checkbox" else f"field-{name}",
                    getattr(self.model_admin, name)) for name in self.list_display]
        rows = [admin_list.ResultList(None, [
            mark_safe(f'<td class="{css}">{conditional_escape(cell(run))}</td>')
            for css, cell in columns
        ]) for run in self.result_list]
        return {"result_headers": headers, "result_hidden_fields": [], "results": rows,
                "num_sorted_fields": sum(1 for h in headers if h["sortable"] and h["sorted"])}


# The cells below are built with escape() and f-strings rather than format_html: 500 cells a
# page, and the list's time is mostly the admin's rendering (see docs/benchmarks.md).

def _when(moment, same_day_as=None) -> str:
    """A compact local date and time, the time alone on the day of `same_day_as` (the full
    moment in the tooltip), so the list stays narrow."""
    if moment is None:
        return "—"
    zone = timezone.get_current_timezone()
    local = moment.astimezone(zone)
    short = same_day_as is not None and same_day_as.astimezone(zone).date() == local.date()
    text = local.strftime("%H:%M:%S" if short else "%Y-%m-%d %H:%M:%S")
    return mark_safe(f'<span class="taskops-nowrap" title="{local.isoformat()}">{text}</span>')


def _breakable(text: str | None, after: str) -> str:
    """`text` escaped, allowed to wrap after each `after` only (a dotted task name, a node name)."""
    if not text:
        return "—"
    return mark_safe(f"{after}<wbr>".join(escape(part) for part in text.split(after)))


class RetryActionForm(ReasonActionForm):
    """The run list's action bar: a reason, and what a retry of the selection includes."""

    include_retried = forms.BooleanField(required=False, label="include runs already retried")
    include_succeeded = forms.BooleanField(required=False, label="include runs that succeeded")


# What the retry-all-matching forms post besides the list's own filters.
RETRY_MATCHING_FIELDS = ("csrfmiddlewaretoken", *RetryMatchingForm.base_fields, *CURSOR_PARAMS)


@admin.register(TaskRun)
class TaskRunAdmin(ReadOnlyConsoleAdmin):
    view_action = "run.view"
    list_display_links = None  # the run column links to the run page itself
    list_display = ("run_link", "task", "state", "queue", "started", "done", "duration",
                    "node", "periodic")
    # Only orders an index serves (newest or oldest first): sorting millions of rows by
    # another column would read them all.
    sortable_by = ("done",)
    list_filter = (StateFilter, TaskNameFilter, WorkerFilter, QueueFilter, PeriodicFilter,
                   ("date_done", DateFieldListFilter))
    search_fields = ("task_id",)  # replaced by get_search_results: exact id, or inside the args
    search_help_text = "A task id (exact), or a value inside the arguments, such as a customer id."
    show_facets = admin.ShowFacets.NEVER  # counts per filter choice would read the whole table
    show_full_result_count = False  # and the paginator counts at most 10,000 rows:
    paginator = CappedCountPaginator
    list_per_page = 50
    ordering = ("-date_done", "-id")
    actions = ["retry_selected"]
    action_form = RetryActionForm
    change_list_template = "admin/taskops/run_list.html"

    def has_retry_permission(self, request) -> bool:
        return can(request.user, "task.retry")

    # --- list ---------------------------------------------------------------------------------
    def get_queryset(self, request):
        # Tracebacks, results and captured calls can be large: the list never loads them; the
        # queue is read from the captured call by the database, for the rows shown only.
        return (super().get_queryset(request).defer("result", "traceback", "meta")
                .annotate(run_queue=RunQueue()))

    def get_changelist(self, request, **kwargs):
        return RunChangeList

    def get_search_results(self, request, queryset, search_term):
        if not search_term.strip():
            return queryset, False
        if "\x00" in search_term:  # nothing stored holds one; PostgreSQL refuses the query
            return queryset.none(), False
        return queryset.filter(selectors.run_search_filter(search_term)), False

    def action_checkbox(self, obj):
        """The admin's own checkbox markup, written directly: rendering a widget through the
        form templates for each of 50 rows was a fifth of the page's time."""
        return mark_safe(f'<input type="checkbox" name="{helpers.ACTION_CHECKBOX_NAME}" '
                         f'value="{obj.pk}" class="action-select" '
                         f'aria-label="Select this object for an action - {escape(str(obj))}">')

    @admin.display(description="run")
    def run_link(self, run: TaskRun) -> str:
        short = run.task_id if len(run.task_id) <= 12 else f"{run.task_id[:8]}…"
        url = escape(run_views.run_url(run.task_id))
        return mark_safe(f'<a class="taskops-mono taskops-nowrap" href="{url}" '
                         f'title="{escape(run.task_id)}">{escape(short)}</a>')

    @admin.display(description="state")
    def state(self, run: TaskRun) -> str:
        return mark_safe(f'<span class="taskops-badge {STATE_CLASS.get(run.status, "warn")}">'
                         f'{escape(run.status)}</span>')

    @admin.display(description="queue")
    def queue(self, run: TaskRun) -> str:
        return run.run_queue or "—"

    @admin.display(description="task")
    def task(self, run: TaskRun) -> str:
        return _breakable(run.task_name, ".")

    @admin.display(description="worker")
    def node(self, run: TaskRun) -> str:
        return _breakable(run.worker, "@")

    @admin.display(description="periodic task")
    def periodic(self, run: TaskRun) -> str:
        return run.periodic_task_name or "—"

    @admin.display(description="started")
    def started(self, run: TaskRun) -> str:
        return _when(run.date_started, same_day_as=run.date_done)

    @admin.display(description="done", ordering="date_done")
    def done(self, run: TaskRun) -> str:
        return _when(run.date_done)

    @admin.display(description="duration")
    def duration(self, run: TaskRun) -> str:
        if not (run.date_started and run.date_done):
            return "—"
        return f"{(run.date_done - run.date_started).total_seconds():.2f} s"

    @admin.action(description="Retry the selected runs (with their captured calls)",
                  permissions=["retry"])
    def retry_selected(self, request, queryset):
        chosen = {name: forms.CheckboxInput().value_from_datadict(request.POST, {}, name)
                  for name in ("include_retried", "include_succeeded")}
        if not chosen["include_succeeded"]:
            queryset = queryset.exclude(status="SUCCESS")
        self._retry(request, queryset.values_list("task_id", flat=True), "the selected runs",
                    **chosen)

    def _retry(self, request, task_ids, description: str, *, include_retried: bool = False,
               include_succeeded: bool = False):
        """Retry now when few, else as a background job; say what happened either way."""
        limit = config.retry_inline_limit
        task_ids = task_ids.iterator(chunk_size=5000) if hasattr(task_ids, "iterator") else task_ids
        first = []
        for task_id in task_ids:
            first.append(task_id)
            if len(first) > limit:
                break
        actor = Actor.from_request(request)
        reason = request.POST.get("reason", "")
        included = {"include_retried": include_retried, "include_succeeded": include_succeeded}
        if len(first) <= limit:
            if not first:
                messages.warning(request, "No runs match: nothing was retried.")
                return None
            outcome_perform(request, lambda: services.task_retry(actor=actor, task_ids=first,
                                                                 reason=reason, **included))
            return None
        try:
            job = services.retry_job_create(actor=actor, task_ids=itertools.chain(first, task_ids),
                                            description=f"retry of {description}", reason=reason,
                                            **included)
        except services.ActionRefused as refusal:
            messages.error(request, f"Nothing was retried: {refusal}")
            return None
        if job.pending_approval:
            messages.info(request, f"Bulk job {job.pk} ({job.total} runs) waits for a second "
                                   f"person's approval (request #{job.pending_approval}).")
        else:
            messages.success(request, f"{job.total} runs are retried by bulk job {job.pk} in the "
                                      "background: follow it on its page.")
        return HttpResponseRedirect(reverse("admin:taskops_taskrun_job", args=[job.pk]))

    def _matching(self, request: HttpRequest, data, *, include_succeeded: bool):
        """The list's filters in `data` (all matching runs, not one page) and their runs, in the
        list's order; SUCCESS runs only when included. Raises what bad filters raise."""
        listing = copy.copy(request)
        listing.GET = data.copy()
        for key in RETRY_MATCHING_FIELDS:
            listing.GET.pop(key, None)
        runs = self.get_changelist_instance(listing).get_queryset(listing)
        return listing.GET, runs if include_succeeded else runs.exclude(status="SUCCESS")

    def retry_matching_confirm(self, request: HttpRequest) -> HttpResponse:
        """GET: what retrying every run matching the list's filters would send, by state and task
        (one grouped query, capped at TASKOPS_BULK_RETRY_MAX); confirming it posts to retry_matching."""
        require(request, "task.retry")
        form = RetryMatchingForm(request.GET)
        chosen = form.cleaned_data if form.is_valid() else {}
        try:
            filters, runs = self._matching(request, request.GET,
                                           include_succeeded=chosen.get("include_succeeded", False))
            preview = selectors.retry_preview(runs, cap=config.bulk_retry_max)
        except (IncorrectLookupParameters, FieldError, ValidationError, ValueError) as exc:
            messages.error(request, f"The filters could not be applied ({exc}).")
            return HttpResponseRedirect(reverse("admin:taskops_taskrun_changelist"))
        sending = preview.sending(chosen.get("include_retried", False))
        return render_page(request, "admin/taskops/retry_matching_confirm.html",
                           "Retry all matching runs", {
                               "preview": preview, "sending": sending, "form": form,
                               "chosen": chosen, "filters": list(filters.lists()),
                               "filters_text": urlencode(sorted(filters.items())) or "all runs",
                               "list_url": reverse("admin:taskops_taskrun_changelist")
                               + (f"?{filters.urlencode()}" if filters else ""),
                               "bulk_retry_max": config.bulk_retry_max,
                               "bulk_reason_threshold": config.bulk_retry_reason_threshold,
                           }, site=self.admin_site)

    def retry_matching(self, request: HttpRequest) -> HttpResponse:
        """POST from the confirmation page: retry every run matching the list's filters, unless
        more would be sent now than the page showed (then it is shown again, nothing sent)."""
        if request.method != "POST":
            return post_only()
        require(request, "task.retry")
        form = RetryMatchingForm(request.POST)
        confirm = reverse("admin:taskops_taskrun_retry_matching_confirm")
        chosen = form.cleaned_data if form.is_valid() else {}
        try:
            filters, runs = self._matching(request, request.POST,
                                           include_succeeded=chosen.get("include_succeeded", False))
            shown = chosen.get("expected")
            sending = (selectors.retry_preview(runs, cap=config.bulk_retry_max)
                       .sending(chosen.get("include_retried", False)) if shown is not None else 0)
        except (IncorrectLookupParameters, FieldError, ValidationError, ValueError) as exc:
            messages.error(request, f"Nothing was retried: the filters could not be applied ({exc}).")
            return HttpResponseRedirect(reverse("admin:taskops_taskrun_changelist"))
        kept = filters.copy()  # the filters, and what was chosen to include
        kept.update({name: "on" for name in ("include_succeeded", "include_retried") if chosen.get(name)})
        again = HttpResponseRedirect(f"{confirm}?{kept.urlencode()}")
        if not form.is_valid() or shown is None:
            messages.info(request, "Nothing was retried yet: check what would be sent, then confirm.")
            return again
        if sending > shown:
            messages.warning(request, f"Nothing was retried: {sending} runs would be sent now, more "
                                      f"than the {shown} you confirmed. Check again.")
            return again
        described = urlencode(sorted(filters.items())) or "all runs"
        response = self._retry(request, runs.order_by("id").values_list("task_id", flat=True),
                               f"runs matching {described}",
                               include_retried=chosen.get("include_retried", False),
                               include_succeeded=chosen.get("include_succeeded", False))
        return response or HttpResponseRedirect(
            reverse("admin:taskops_taskrun_changelist") + (f"?{filters.urlencode()}" if filters else ""))

    def changelist_view(self, request, extra_context=None):
        extra = {"has_retry_permission": self.has_retry_permission(request),
                 "bulk_reason_threshold": config.bulk_retry_reason_threshold,
                 **(extra_context or {})}
        return super().changelist_view(request, extra_context=extra)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        run = TaskRun.objects.filter(pk=object_id).only("task_id").first()
        return HttpResponseRedirect(run_views.run_url(run.task_id) if run else
                                    reverse("admin:taskops_taskrun_changelist"))

    def get_urls(self):
        wrap = functools.partial(site_view, self.admin_site)
        return [
            path("retry-matching/", wrap(self.retry_matching), name="taskops_taskrun_retry_matching"),
            path("retry-matching/confirm/", wrap(self.retry_matching_confirm),
                 name="taskops_taskrun_retry_matching_confirm"),
            path("jobs/<int:job_id>/", wrap(run_views.retry_job), name="taskops_taskrun_job"),
            path("jobs/<int:job_id>/resume/", wrap(run_views.retry_job_resume),
                 name="taskops_taskrun_job_resume"),
            path("run/<taskops_name:task_id>/", wrap(run_views.run_detail),
                 name="taskops_taskrun_detail"),
            path("run/<taskops_name:task_id>/reveal/", wrap(run_views.run_reveal),
                 name="taskops_taskrun_reveal"),
            path("run/<taskops_name:task_id>/retry/", wrap(run_views.run_retry),
                 name="taskops_taskrun_retry"),
            path("run/<taskops_name:task_id>/retry-edited/", wrap(run_views.run_retry_edited),
                 name="taskops_taskrun_retry_edited"),
            *super().get_urls(),
        ]


# Group results keep the stock admin of django-celery-results, reading only its declared filters.
if admin.site.is_registered(GroupResult):
    admin.site.unregister(GroupResult)


@admin.register(GroupResult)
class GroupResultAdmin(DeclaredFiltersMixin, StockGroupResultAdmin):
    """The stock group results list, read-only like the runs; every role that reads runs sees it."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
