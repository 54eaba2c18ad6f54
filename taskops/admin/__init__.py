"""The console's admin pages: one module per area, registered on the default admin site."""

from django.contrib import admin
from django_celery_results.models import TaskResult

from taskops.admin import approvals, audit, live, reports, runs, schedules  # noqa: F401

# Task runs replace the stock results list (which counts the whole table and loads every column).
if admin.site.is_registered(TaskResult):
    admin.site.unregister(TaskResult)
