"""Task runs in the admin: search and filter the results, retry selected or all matching runs."""

from __future__ import annotations

import copy

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin import DateFieldListFilter, SimpleListFilter
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import FieldError, ValidationError
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.http import urlencode

from taskops import selectors, services
from taskops.admin.pages import ReadOnlyConsoleAdmin
from taskops.conf import celery_app
from taskops.models import TaskRun, WorkerSeen
from taskops.paginators import CappedCountPaginator
from taskops.permissions import can
from taskops.services import Actor
from taskops.views import runs as run_views
from taskops.views.common import require

STATE_CLASS = {"SUCCESS": "ok", "FAILURE": "bad", "REVOKED": "bad", "RETRY": "warn", "STARTED": "warn"}


class TaskNameFilter(SimpleListFilter):
    """Tasks known to the app and the workers (no DISTINCT over the whole results table)."""

    title = "task"
    parameter_name = "task_name"

    def lookups(self, request, model_admin):
        names = {n for n in celery_app().tasks if not n.startswith("celery.")}
        return [(n, n) for n in sorted(names)]

    def queryset(self, request, queryset):
        return queryset.filter(task_name=self.value()) if self.value() else queryset


class WorkerFilter(SimpleListFilter):
    title = "worker"
    parameter_name = "worker"

    def lookups(self, request, model_admin):
        return [(n, n) for n in WorkerSeen.objects.order_by("name").values_list("name", flat=True)]

    def queryset(self, request, queryset):
        return queryset.filter(worker=self.value()) if self.value() else queryset


class PeriodicFilter(SimpleListFilter):
    title = "periodic task"
    parameter_name = "periodic_task_name"

    def lookups(self, request, model_admin):
        from django_celery_beat.models import PeriodicTask

        return [(n, n) for n in PeriodicTask.objects.order_by("name").values_list("name", flat=True)]

    def queryset(self, request, queryset):
        return queryset.filter(periodic_task_name=self.value()) if self.value() else queryset


@admin.register(TaskRun)
class TaskRunAdmin(ReadOnlyConsoleAdmin):
    view_action = "run.view"
    list_display_links = None  # the run column links to the run page itself
    list_display = ("run_link", "task_name", "state", "date_started", "date_done", "duration",
                    "worker", "periodic_task_name")
    list_filter = ("status", TaskNameFilter, WorkerFilter, PeriodicFilter,
                   ("date_done", DateFieldListFilter))
    search_fields = ("task_id",)  # replaced by get_search_results: exact id, or inside the args
    search_help_text = "A task id (exact), or a value inside the arguments, such as a customer id."
    show_full_result_count = False  # and the paginator counts at most 10,000 rows:
    paginator = CappedCountPaginator
    list_per_page = 50
    ordering = ("-date_done", "-id")
    actions = ["retry_selected"]
    change_list_template = "admin/taskops/run_list.html"

    def has_retry_permission(self, request) -> bool:
        return can(request.user, "task.retry")

    # --- list ---------------------------------------------------------------------------------
    def get_queryset(self, request):
        # Tracebacks, results and captured calls can be large: the list never loads them.
        return super().get_queryset(request).defer("result", "traceback", "meta")

    def get_search_results(self, request, queryset, search_term):
        if not search_term.strip():
            return queryset, False
        return queryset.filter(selectors.run_search_filter(search_term)), False

    @admin.display(description="run", ordering="task_id")
    def run_link(self, run: TaskRun) -> str:
        short = run.task_id if len(run.task_id) <= 12 else f"{run.task_id[:8]}…"
        return format_html('<a class="taskops-mono taskops-nowrap" href="{}" title="{}">{}</a>',
                           run_views.run_url(run.task_id), run.task_id, short)

    @admin.display(description="state", ordering="status")
    def state(self, run: TaskRun) -> str:
        return format_html('<span class="taskops-badge {}">{}</span>',
                           STATE_CLASS.get(run.status, "warn"), run.status)

    @admin.display(description="duration")
    def duration(self, run: TaskRun) -> str:
        if not (run.date_started and run.date_done):
            return "—"
        return f"{(run.date_done - run.date_started).total_seconds():.2f} s"

    @admin.action(description="Retry the selected runs (with their captured calls)",
                  permissions=["retry"])
    def retry_selected(self, request, queryset):
        self._retry(request, queryset.values_list("task_id", flat=True), "the selected runs")

    def _retry(self, request, task_ids, description: str):
        """Retry now when few, else as a background job; say what happened either way."""
        limit = int(getattr(settings, "TASKOPS_RETRY_INLINE_LIMIT", 100))
        task_ids = task_ids.iterator(chunk_size=5000) if hasattr(task_ids, "iterator") else task_ids
        first = []
        for task_id in task_ids:
            first.append(task_id)
            if len(first) > limit:
                break
        actor = Actor.from_request(request)
        reason = request.POST.get("reason", "")
        if len(first) <= limit:
            if not first:
                messages.warning(request, "No runs match: nothing was retried.")
                return None
            outcome = services.task_retry(actor=actor, task_ids=first, reason=reason)
            level = {"ok": messages.SUCCESS, "partial": messages.WARNING}.get(outcome.outcome,
                                                                               messages.ERROR)
            messages.add_message(request, level, outcome.message)
            return None
        import itertools

        job = services.retry_job_create(actor=actor, task_ids=itertools.chain(first, task_ids),
                                        description=f"retry of {description}", reason=reason)
        messages.success(request, f"{job.total} runs are retried by bulk job {job.pk} in the "
                                  "background: follow it on its page.")
        return HttpResponseRedirect(reverse("admin:taskops_taskrun_job", args=[job.pk]))

    def retry_matching(self, request):
        """POST: retry every run matching the filters of the list the user was looking at."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        require(request, "task.retry")
        listing = copy.copy(request)
        listing.GET = request.POST.copy()
        for key in ("csrfmiddlewaretoken", "reason"):
            listing.GET.pop(key, None)
        back = reverse("admin:taskops_taskrun_changelist")
        try:
            changelist = self.get_changelist_instance(listing)
            queryset = changelist.get_queryset(listing).order_by("id")
        except (IncorrectLookupParameters, FieldError, ValidationError, ValueError) as exc:
            messages.error(request, f"Nothing was retried: the filters could not be applied ({exc}).")
            return HttpResponseRedirect(back)
        described = urlencode(sorted(listing.GET.items())) or "all runs"
        response = self._retry(request, queryset.values_list("task_id", flat=True),
                               f"runs matching {described}")
        return response or HttpResponseRedirect(
            back + (f"?{listing.GET.urlencode()}" if listing.GET else ""))

    def changelist_view(self, request, extra_context=None):
        extra = {"has_retry_permission": self.has_retry_permission(request), **(extra_context or {})}
        return super().changelist_view(request, extra_context=extra)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        run = TaskRun.objects.filter(pk=object_id).only("task_id").first()
        return HttpResponseRedirect(run_views.run_url(run.task_id) if run else
                                    reverse("admin:taskops_taskrun_changelist"))

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("retry-matching/", wrap(self.retry_matching), name="taskops_taskrun_retry_matching"),
            path("jobs/<int:job_id>/", wrap(run_views.retry_job), name="taskops_taskrun_job"),
            path("jobs/<int:job_id>/resume/", wrap(run_views.retry_job_resume),
                 name="taskops_taskrun_job_resume"),
            path("run/<str:task_id>/", wrap(run_views.run_detail), name="taskops_taskrun_detail"),
            path("run/<str:task_id>/retry/", wrap(run_views.run_retry), name="taskops_taskrun_retry"),
            path("run/<str:task_id>/retry-edited/", wrap(run_views.run_retry_edited),
                 name="taskops_taskrun_retry_edited"),
            *super().get_urls(),
        ]
