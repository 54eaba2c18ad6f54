"""The demo's periodic schedules and logins, created idempotently by `manage.py demo_seed`."""

from __future__ import annotations

import json
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

from taskops.roles import MANAGERS, OPERATIONS, SUPPORT

DEMO_PASSWORD = "demo"


@dataclass(frozen=True)
class DemoLogin:
    username: str
    password: str
    role: str
    # Where this role starts: a page's words, and its admin URL name with an optional query.
    start: str
    start_url_name: str
    start_query: str = ""


DEMO_USERS = [
    DemoLogin("admin", DEMO_PASSWORD, "superuser", "the dashboard", "admin:index"),
    DemoLogin("support", DEMO_PASSWORD, SUPPORT, "TaskOps Console → Task runs, the failed ones",
              "admin:taskops_taskrun_changelist", "?status__exact=FAILURE"),
    DemoLogin("ops", DEMO_PASSWORD, OPERATIONS, "the dashboard (queues, workers, beat), then "
              "Periodic tasks", "admin:index"),
    DemoLogin("manager", DEMO_PASSWORD, MANAGERS, "TaskOps Console → Reports",
              "admin:taskops_report_changelist"),
]


def demo_users_seed() -> list[DemoLogin]:
    """Create the demo logins (staff, each in its group; admin a superuser); reset their passwords."""
    User = get_user_model()
    for login in DEMO_USERS:
        user, _ = User.objects.get_or_create(
            username=login.username, defaults={"email": f"{login.username}@example.com"}
        )
        user.is_staff = True
        user.is_superuser = login.role == "superuser"
        user.set_password(login.password)
        user.save()
        if login.role != "superuser":
            user.groups.set([Group.objects.get(name=login.role)])
    return list(DEMO_USERS)


def demo_schedules_seed() -> list[str]:
    """Create or update the demo periodic tasks; return their names."""
    health_every = settings.DEMO_HEALTH_CHECK_SECONDS
    health_interval, _ = IntervalSchedule.objects.get_or_create(every=health_every,
                                                                period=IntervalSchedule.SECONDS)
    every_2m, _ = IntervalSchedule.objects.get_or_create(every=2, period=IntervalSchedule.MINUTES)
    hourly, _ = CrontabSchedule.objects.get_or_create(
        minute="0", hour="*", day_of_week="*", day_of_month="*", month_of_year="*", timezone="UTC"
    )
    nightly, _ = CrontabSchedule.objects.get_or_create(
        minute="30", hour="2", day_of_week="*", day_of_month="*", month_of_year="*", timezone="UTC"
    )
    specs = [
        {
            "name": "Partner API health check",
            "task": "demo.tasks.flaky_call",
            "interval": health_interval,
            "kwargs": {"endpoint": "partner-api/health", "fail_rate": 0.3, "customer_id": 1001},
            "queue": "default",
            "description": f"Every {health_every} s; fails now and then, retries with backoff.",
        },
        {
            "name": "Sales report (every 2 minutes)",
            "task": "demo.tasks.generate_report",
            "interval": every_2m,
            "args": ["sales"],
            "queue": "reports",
            "description": "Writes var/media/reports/sales-<date>.csv and returns its path.",
        },
        {
            "name": "Inventory report (hourly)",
            "task": "demo.tasks.generate_report",
            "crontab": hourly,
            "args": ["inventory"],
            "kwargs": {"rows": 50},
            "queue": "reports",
            "description": "At minute 0 of every hour.",
        },
        {
            "name": "Nightly digest email",
            "task": "demo.tasks.send_email",
            "crontab": nightly,
            "kwargs": {"user_id": 1, "template": "nightly-digest"},
            "queue": "emails",
            "description": "At 02:30 UTC.",
        },
    ]
    names = []
    with transaction.atomic():
        for spec in specs:
            defaults = {
                "task": spec["task"],
                "interval": spec.get("interval"),
                "crontab": spec.get("crontab"),
                "args": json.dumps(spec.get("args", [])),
                "kwargs": json.dumps(spec.get("kwargs", {})),
                "queue": spec["queue"],
                "description": spec["description"],
            }
            task, created = PeriodicTask.objects.get_or_create(name=spec["name"], defaults=defaults)
            if not created and (task.task, task.queue) != (spec["task"], spec["queue"]):
                for key, value in defaults.items():
                    setattr(task, key, value)
                task.save()
            names.append(task.name)
    return names
