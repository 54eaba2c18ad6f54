"""The run list's default views are served by the console's indexes (no sort over the whole table)."""

import pytest
from django.db import connection, transaction

from taskops.models import TaskRun

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("filters", "index"),
    [
        ({}, "taskops_run_done"),
        ({"status": "FAILURE"}, "taskops_run_status_done"),
        ({"task_name": "demo.tasks.sync_invoices"}, "taskops_run_task_done"),
        ({"periodic_task_name": "Nightly digest email"}, "taskops_run_periodic_done"),
    ],
)
def test_newest_first_views_use_their_index(filters, index):
    newest_first = TaskRun.objects.filter(**filters).order_by("-date_done", "-id")[:50]
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:  # a tiny test table would be scanned otherwise
                cursor.execute("SET LOCAL enable_seqscan = off")
        plan = newest_first.explain()
    assert index in plan, plan
