"""Ops in a real browser: edit a crontab, watch the preview follow, save with a reason, restore the old version (a seeded schedule's too)."""

import re

import pytest
from django.contrib.auth.models import Group
from django_celery_beat.models import CrontabSchedule, PeriodicTask
from playwright.sync_api import expect

from taskops.models import AuditEntry, ScheduleVersion
from taskops.services import Actor, schedule_save
from tests.e2e.conftest import log_in

pytestmark = pytest.mark.django_db(transaction=True)


def test_ops_edits_a_crontab_sees_the_preview_change_saves_with_a_reason_and_restores_it(
    live_server, page, django_user_model
):
    user = django_user_model.objects.create_user("ops-e2e", password="pw", is_staff=True)
    user.groups.add(Group.objects.get(name="Operations"))
    schedule_save(actor=Actor(user=user), reason="nightly sales report", definition={
        "name": "Nightly sales", "task": "demo.tasks.generate_report", "args": ["sales"],
        "kwargs": {}, "queue": "reports", "enabled": True,
        "schedule": {"kind": "crontab", "minute": "0", "hour": "2", "day_of_month": "*",
                     "month_of_year": "*", "day_of_week": "*", "timezone": "Europe/Berlin"},
    })
    task = PeriodicTask.objects.get(name="Nightly sales")
    created = ScheduleVersion.objects.get(periodic_task=task)

    log_in(page, live_server, "ops-e2e", "pw")
    page.goto(f"{live_server.url}/admin/django_celery_beat/periodictask/")
    row = page.locator("#result_list tbody tr", has_text="Nightly sales")
    expect(row).to_contain_text("At 02:00")
    expect(row).to_contain_text("Europe/Berlin")
    row.locator("a", has_text="Nightly sales").click()

    times = page.locator("[data-preview-times] li")
    expect(times).to_have_count(10)
    expect(times.first).to_contain_text("02:00 CE")  # CET or CEST, as the date has it
    expect(page.locator("[data-kind-group=interval]")).to_be_hidden()
    page.fill("#id_hour", "5")
    page.fill("#id_minute", "45")
    expect(page.locator("[data-preview-text]")).to_have_text(re.compile(r"^At 05:45"))
    expect(times.first).to_contain_text("05:45 CE")
    page.fill("#id_hour", "25")  # not an hour: the preview says so instead of failing
    expect(page.locator("[data-preview-error]")).to_contain_text("not in 0-23")
    page.fill("#id_hour", "5")
    expect(times.first).to_contain_text("05:45 CE")
    page.fill("#id_reason", "after the nightly backup")
    page.click("input[name=_continue]")

    expect(page.locator("ul.messagelist")).to_contain_text("schedule.minute, schedule.hour changed")
    task.refresh_from_db()
    assert (task.crontab.hour, task.crontab.minute) == ("5", "45")
    page.click("[data-schedule-history]")
    edited = page.locator("[data-version-action=edited]")
    expect(edited).to_contain_text("after the nightly backup")
    expect(edited.locator("[data-change-field='schedule.hour']")).to_contain_text("2")
    restore = page.locator(f"form[data-restore='{created.pk}']")
    restore.locator("input[name=reason]").fill("backup moved back to 01:00")
    restore.locator("input[type=submit]").click()

    expect(page.locator("ul.messagelist")).to_contain_text(f"restored to version {created.pk}")
    expect(page.locator("[data-version-action=restored]")).to_contain_text("backup moved back")
    task.refresh_from_db()
    assert (task.crontab.hour, task.crontab.minute) == ("2", "0")
    assert list(AuditEntry.objects.filter(target="Nightly sales").order_by("id")
                .values_list("action", "reason")) == [
        ("schedule.create", "nightly sales report"),
        ("schedule.edit", "after the nightly backup"),
        ("schedule.restore", "backup moved back to 01:00"),
    ]


def test_ops_undoes_the_first_console_edit_of_a_seeded_schedule(live_server, page, django_user_model):
    user = django_user_model.objects.create_user("ops-seeded", password="pw", is_staff=True)
    user.groups.add(Group.objects.get(name="Operations"))
    # Seeded in code, as a project's data migration would: the console has no version of it.
    crontab = CrontabSchedule.objects.create(minute="10", hour="3", timezone="UTC")
    task = PeriodicTask.objects.create(name="Seeded cleanup", task="demo.tasks.generate_report",
                                       crontab=crontab, args='["cleanup"]')

    log_in(page, live_server, "ops-seeded", "pw")
    page.goto(f"{live_server.url}/admin/django_celery_beat/periodictask/{task.pk}/change/")
    page.fill("#id_hour", "5")
    page.fill("#id_reason", "cleanup after the backup")
    page.click("input[name=_continue]")
    expect(page.locator("ul.messagelist")).to_contain_text("schedule.hour changed")
    page.click("[data-schedule-history]")

    found = ScheduleVersion.objects.get(periodic_task=task, action="found")
    expect(page.locator("[data-version-action=found]")).to_contain_text("outside the console")
    restore = page.locator(f"form[data-restore='{found.pk}']")
    restore.locator("input[name=reason]").fill("the backup moved")
    restore.locator("input[type=submit]").click()

    expect(page.locator("ul.messagelist")).to_contain_text(f"restored to version {found.pk}")
    task.refresh_from_db()
    assert (task.crontab.hour, task.crontab.minute, task.args) == ("3", "10", '["cleanup"]')
