"""The console's admin pages: one module per area, registered on the default admin site."""

# The stock admins of results and beat register first, whatever the order of INSTALLED_APPS
# (the console comes before the admin so that its index wins): the console replaces them.
import django_celery_beat.admin  # noqa: F401
import django_celery_results.admin  # noqa: F401
from django.contrib import admin
from django_celery_results.models import TaskResult

from taskops.admin import approvals, audit, live, reports, runs, schedules  # noqa: F401

# Task runs replace the stock results list (which counts the whole table and loads every column).
if admin.site.is_registered(TaskResult):
    admin.site.unregister(TaskResult)
