"""Periodic tasks in the admin: the console's list, editor, versions and actions replace the stock admin."""

from __future__ import annotations

import functools
from html import escape

from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.http import urlencode
from django.utils.safestring import mark_safe
from django.utils.timesince import timeuntil
from django_celery_beat.models import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
    SolarSchedule,
)

from taskops.admin.pages import (
    DeclaredFiltersChangeList,
    DeclaredFiltersMixin,
    ReasonActionForm,
    name_in_url,
    site_view,
)
from taskops.admin.schedule_transfer import ScheduleTransferAdminMixin
from taskops.permissions import can
from taskops.selectors.schedules import SCHEDULE_RELATIONS, ScheduleRow, schedule_rows
from taskops.services import Actor
from taskops.services import schedules as services
from taskops.views import schedules as views
from taskops.views.common import outcome_perform
from taskops.views.runs import run_url

# The stock admins accept unknown task names, 500 on bad JSON and run tasks without their
# routing; schedules are edited inside the periodic task form instead of on pages of their own.
for _model in (PeriodicTask, CrontabSchedule, IntervalSchedule, SolarSchedule, ClockedSchedule):
    if admin.site.is_registered(_model):
        admin.site.unregister(_model)


class ScheduleKindFilter(admin.SimpleListFilter):
    title = "schedule kind"
    parameter_name = "kind"

    def lookups(self, request, model_admin):
        return [(kind, kind) for kind in SCHEDULE_RELATIONS]

    def queryset(self, request, queryset):
        if self.value() in SCHEDULE_RELATIONS:
            return queryset.filter(**{f"{self.value()}__isnull": False})
        return queryset


RUN_ID_MARK = "TASKOPS-RUN-ID"


class ScheduleChangeList(DeclaredFiltersChangeList):
    """Attaches each shown schedule's row (next fire, runs) after the page is read: one more query."""

    def get_results(self, request):
        super().get_results(request)
        self.result_list = list(self.result_list)
        rows = schedule_rows(self.result_list)
        # One reverse() for the page: a strip links each of up to 12 runs on each of 100 rows.
        run_link = run_url(RUN_ID_MARK)
        for task in self.result_list:
            task.taskops_row = rows[task.pk]
            task.taskops_run_link = run_link


def _row(task: PeriodicTask) -> ScheduleRow:
    return task.taskops_row


def _run_href(task: PeriodicTask, task_id: str) -> str:
    return task.taskops_run_link.replace(RUN_ID_MARK, name_in_url(task_id))


def _run_title(run) -> str:
    when = run.created or run.done
    return f"{run.status} {f'{when:%Y-%m-%d %H:%M:%S} ' if when else ''}{run.task_id}"


def _until(at) -> str:
    """How far away a time is: "in 9 hours, 22 minutes", "in under a minute", "due now"."""
    now = timezone.now()
    if at <= now:
        return "due now"
    if (at - now).total_seconds() < 60:
        return "in under a minute"
    return f"in {timeuntil(at, now, depth=2)}"


@admin.register(PeriodicTask)
class PeriodicTaskAdmin(DeclaredFiltersMixin, ScheduleTransferAdminMixin, admin.ModelAdmin):
    """The schedule list; add, change, delete and history are the console's own pages."""

    list_display = ("name", "task_column", "schedule_column", "enabled", "next_fire_column",
                    "runs_column")
    list_display_links = ("name",)
    list_filter = ("enabled", ScheduleKindFilter, "one_off")
    search_fields = ("name", "task", "description")
    search_help_text = "Part of a schedule's name, task or description."
    ordering = ("name",)
    list_per_page = 100
    actions = ["enable_selected", "disable_selected", "run_selected", "clone_selected"]
    action_form = ReasonActionForm
    change_list_template = "admin/taskops/schedule_list.html"

    # --- Access: can() decides -------------------------------------------------------------
    def has_view_permission(self, request, obj=None) -> bool:
        return can(request.user, "schedule.view")

    def has_module_permission(self, request) -> bool:
        return can(request.user, "schedule.view")

    def has_add_permission(self, request) -> bool:
        return can(request.user, "schedule.edit")

    def has_change_permission(self, request, obj=None) -> bool:
        return can(request.user, "schedule.edit")

    def has_delete_permission(self, request, obj=None) -> bool:
        return can(request.user, "schedule.edit")

    def has_edit_permission(self, request) -> bool:
        return can(request.user, "schedule.edit")

    def has_run_permission(self, request) -> bool:
        return can(request.user, "schedule.run")

    # --- List -------------------------------------------------------------------------------
    def get_queryset(self, request):
        return super().get_queryset(request).select_related(*SCHEDULE_RELATIONS)

    def get_changelist(self, request, **kwargs):
        return ScheduleChangeList

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # deleting needs a reason: one at a time, from its page
        return actions

    @admin.display(description="task · queue / priority", ordering="task")
    def task_column(self, task: PeriodicTask) -> str:
        registered = _row(task).task_registered
        flag = ""
        if registered is False:
            flag = format_html(' <span class="taskops-badge bad" data-task-unknown title="{}">'
                               "unknown task</span>",
                               "No worker registers this task name: beat sends it, nobody runs it.")
        elif registered is None:
            flag = format_html(' <span class="taskops-badge warn" data-task-unknown title="{}">'
                               "not registered here</span>",
                               "Not registered in this console; not every worker could be asked.")
        priority = f" · priority {task.priority}" if task.priority is not None else ""
        # Break long dotted names after a dot, never inside a word.
        name = mark_safe("<wbr>".join(escape(part) + "." for part in task.task.split("."))[:-1])
        return format_html('<span class="taskops-mono taskops-task-name">{}</span>{}'
                           '<div class="taskops-quiet" data-schedule-routing>{}{}</div>',
                           name, flag, task.queue or "routed by task", priority)

    @admin.display(description="schedule / time zone")
    def schedule_column(self, task: PeriodicTask) -> str:
        row = _row(task)
        return format_html('<span data-schedule-kind="{}">{}</span><div class="taskops-quiet" '
                           'data-schedule-zone>{}</div>', row.schedule.get("kind") or "none",
                           row.text or row.next_state or "—", row.timezone)

    @admin.display(description="next run")
    def next_fire_column(self, task: PeriodicTask) -> str:
        row = _row(task)
        if row.next_fire is None:
            return format_html('<span class="taskops-quiet" data-next-fire="">{}</span>',
                               row.next_state or "—")
        at = row.next_fire.at
        return format_html(
            '<span class="taskops-nowrap" data-next-fire="{}" title="{}">{}</span>'
            '<div class="taskops-quiet">{}</div>{}',
            at.isoformat(), row.next_fire.text, f"{at:%a %d %b %H:%M} {at.tzname()}",
            _until(at), format_html('<div class="taskops-fire-note">{}</div>', row.next_fire.note)
            if row.next_fire.note else "")

    @admin.display(description="last run · recent runs")
    def runs_column(self, task: PeriodicTask) -> str:
        row = _row(task)
        last = row.last_run
        if last is None:
            latest = format_html('<span class="taskops-quiet">{}</span>', "never run")
        else:
            when = last.created or last.done
            latest = format_html(
                '<a href="{}" class="taskops-badge {}" data-last-run="{}">{}</a> '
                '<span class="taskops-quiet taskops-nowrap">{}</span>',
                _run_href(task, last.task_id), last.status, last.status, last.status,
                f"{when:%Y-%m-%d %H:%M:%S}" if when else "")
        cells = mark_safe("".join(  # every value escaped (the stdlib's escape: 1,200 calls a page)
            f'<a class="taskops-run {escape(run.status)}" href="{escape(_run_href(task, run.task_id))}"'
            f' title="{escape(_run_title(run))}"></a>' for run in reversed(row.runs)))
        every = reverse("admin:taskops_taskrun_changelist") + "?" + urlencode(
            {"periodic_task_name": task.name})
        return format_html('<div>{}</div><span class="taskops-strip" data-run-strip="{}">{}</span> '
                           '<a href="{}" class="taskops-quiet">all runs</a>',
                           latest, len(row.runs), cells, every)

    # --- Actions ----------------------------------------------------------------------------
    def _act(self, request, queryset, service, **options) -> None:
        """Run `service` on the selected schedules with the action bar's reason; say the outcome."""
        outcome_perform(
            request,
            lambda: service(actor=Actor.from_request(request),
                            task_ids=list(queryset.values_list("pk", flat=True)),
                            reason=request.POST.get("reason", "").strip(), **options),
            shown=lambda outcome: (views.run_message(outcome) if "runs" in outcome.detail
                                   or "task_id" in outcome.detail else outcome.message))

    @admin.action(description="Enable the selected schedules", permissions=["edit"])
    def enable_selected(self, request, queryset):
        self._act(request, queryset, services.schedule_enable, enabled=True)

    @admin.action(description="Disable the selected schedules", permissions=["edit"])
    def disable_selected(self, request, queryset):
        self._act(request, queryset, services.schedule_enable, enabled=False)

    @admin.action(description="Run the selected schedules now (as beat would)", permissions=["run"])
    def run_selected(self, request, queryset):
        self._act(request, queryset, services.schedule_run_now)

    @admin.action(description="Clone the selected schedules (disabled copies)", permissions=["edit"])
    def clone_selected(self, request, queryset):
        self._act(request, queryset, services.schedule_clone)

    # --- The console's own pages ------------------------------------------------------------
    def _task(self, request, object_id):
        return self.get_object(request, unquote(object_id))

    def add_view(self, request, form_url="", extra_context=None):
        return views.schedule_edit(request, None, site=self.admin_site)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        task = self._task(request, object_id)
        if task is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        return views.schedule_edit(request, task, site=self.admin_site)

    def delete_view(self, request, object_id, extra_context=None):
        task = self._task(request, object_id)
        if task is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        return views.schedule_delete(request, task, site=self.admin_site)

    def history_view(self, request, object_id, extra_context=None):
        task = self._task(request, object_id)
        if task is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        return views.schedule_history(request, task, site=self.admin_site)

    def get_urls(self):
        wrap = functools.partial(site_view, self.admin_site)
        own = [
            ("preview/", views.schedule_preview, "preview"),
            ("versions/", views.schedule_versions, "versions"),
            ("versions/<int:version_id>/restore/", views.schedule_restore, "restore"),
            ("<int:object_id>/run/", views.schedule_run, "run"),
            ("<int:object_id>/clone/", views.schedule_clone, "clone"),
        ]
        # Before the admin's own "<path:object_id>/" routes, which would take these paths.
        return [
            *[path(route, wrap(view), name=f"taskops_schedule_{suffix}")
              for route, view, suffix in [*own, *self.transfer_urls()]],
            *super().get_urls(),
        ]
