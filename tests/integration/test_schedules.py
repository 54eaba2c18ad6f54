"""The schedule editor with a real beat and real workers: edits beat sees, run now as beat runs, versions."""

from __future__ import annotations

import json
import re
import time
from datetime import datetime, timedelta

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask, PeriodicTasks
from django_celery_results.models import TaskResult

from taskops.conf import celery_app
from taskops.models import AuditEntry, ScheduleVersion
from taskops.schedules.definitions import definition_of
from taskops.selectors.schedules import definition_fingerprint
from tests.support.poll import poll_until
from tests.support.tasks import unique

pytestmark = pytest.mark.django_db(transaction=True)

TASK = "demo.tasks.flaky_call"
LIST = "admin:django_celery_beat_periodictask_changelist"


def _form(name: str, *, queue: str, endpoint: str, **extra) -> dict:
    """The editor's fields for an interval schedule of flaky_call that never fails."""
    return {
        "name": name, "task": TASK, "kind": "interval", "every": "1", "period": "seconds",
        "timezone": "UTC", "args": "[]",
        "kwargs": json.dumps({"endpoint": endpoint, "fail_rate": 0}), "queue": queue,
        "headers": "{}", "enabled": "on", "reason": "integration test", **extra,
    }


def _add(client, name: str, **form) -> PeriodicTask:
    """A schedule created through the editor (default: every second, flaky_call, queue default)."""
    response = client.post(reverse("admin:django_celery_beat_periodictask_add"),
                           _form(name, **{"queue": "default", "endpoint": name, **form}))
    assert response.status_code == 302, response.content.decode()[:3000]
    return PeriodicTask.objects.get(name=name)


def _edit(client, task: PeriodicTask, reason: str = "edit", **changes):
    task = PeriodicTask.objects.get(pk=task.pk)
    data = {**_form(task.name, queue=task.queue or "", endpoint=""), **{
        "kwargs": task.kwargs, "args": task.args, "reason": reason,
        "based_on": definition_fingerprint(definition_of(task))}, **changes}
    return client.post(reverse("admin:django_celery_beat_periodictask_change", args=[task.pk]), data)


def _runs_with(name: str, text: str, status: str = "SUCCESS"):
    return TaskResult.objects.filter(periodic_task_name=name, task_kwargs__contains=text,
                                     status=status)


def test_a_schedule_created_and_edited_in_the_console_fires_with_its_new_arguments_and_a_bulk_disable_stops_it(
    role_client, start_worker, start_beat
):
    queue = unique("sched")
    start_worker(queue, concurrency=1)  # one process: runs start in the order beat sent them
    start_beat()
    client = role_client("Operations")
    name, canary = unique("every-second"), unique("canary")

    response = client.post(reverse("admin:django_celery_beat_periodictask_add"),
                           _form(name, queue=queue, endpoint="v1-endpoint"))
    assert response.status_code == 302, response.content.decode()[:3000]
    client.post(reverse("admin:django_celery_beat_periodictask_add"),
                _form(canary, queue=queue, endpoint="canary-endpoint", enabled=""))
    task, canary_task = PeriodicTask.objects.get(name=name), PeriodicTask.objects.get(name=canary)
    poll_until(lambda: _runs_with(name, "v1-endpoint").exists(), timeout=30,
               message="beat runs the new schedule with its arguments")

    edited_at = time.monotonic()
    assert _edit(client, task, reason="point at v2",
                 kwargs=json.dumps({"endpoint": "v2-endpoint", "fail_rate": 0})).status_code == 302
    poll_until(lambda: _runs_with(name, "v2-endpoint").exists(), timeout=30,
               message="beat runs the edited schedule with its new arguments")
    # every 1 s, beat checking at least every 1 s: the new arguments are used within seconds
    assert time.monotonic() - edited_at < 15

    response = client.post(reverse(LIST), {"action": "disable_selected", "_selected_action": [task.pk],
                                           "reason": "stop the flood", "index": 0})
    assert response.status_code == 302
    assert not PeriodicTask.objects.get(pk=task.pk).enabled
    # Then a canary is enabled: its runs are sent only once beat has read both changes, and
    # queue up behind anything sent before. While it runs, the disabled schedule must not.
    client.post(reverse(LIST), {"action": "enable_selected", "_selected_action": [canary_task.pk],
                                "reason": "canary", "index": 0})

    def canary_runs(count: int):
        return _runs_with(canary, "canary-endpoint").count() >= count

    poll_until(lambda: canary_runs(3), timeout=30, message="beat runs the canary")
    runs_of_disabled = TaskResult.objects.filter(periodic_task_name=name).count()
    poll_until(lambda: canary_runs(6), timeout=30, message="beat keeps running the canary")
    assert TaskResult.objects.filter(periodic_task_name=name).count() == runs_of_disabled, \
        "the disabled schedule was sent again"

    version = ScheduleVersion.objects.filter(name=name).order_by("-id").first()
    assert (version.action, version.reason, version.actor_name.startswith("operations-")) == (
        "disabled", "stop the flood", True)
    assert version.changes == [{"field": "enabled", "before": True, "after": False}]
    assert AuditEntry.objects.filter(action="schedule.disable", reason="stop the flood").exists()


def _messages(client: redis.Redis, key: str) -> list[dict]:
    return [json.loads(raw) for raw in client.lrange(key, 0, -1)]


@pytest.mark.db_engine
def test_run_now_sends_what_beat_sends_on_the_schedules_queue_with_its_priority_and_shows_in_its_history(
    role_client, isolated_broker, start_beat, start_worker
):
    queue = unique("runnow")
    name = unique("nightly")
    every = IntervalSchedule.objects.create(every=1, period="seconds")
    task = PeriodicTask.objects.create(
        name=name, task=TASK, interval=every, one_off=True, queue=queue, priority=7,
        kwargs=json.dumps({"endpoint": "run-now", "fail_rate": 0}),
        headers=json.dumps({"x-team": "ops"}), expire_seconds=600)
    broker = redis.Redis.from_url(isolated_broker.url)
    key = f"{queue}\x06\x166"  # Redis keeps priority 7 in the list of step 6 (steps 0/3/6/9)

    beat = start_beat()  # sends the one-off once; nothing consumes the queue yet
    poll_until(lambda: broker.llen(key) == 1, timeout=30, message="beat sends the one-off")
    beat.stop()
    client = role_client("Operations")
    response = client.post(reverse("admin:taskops_schedule_run", args=[task.pk]),
                           {"reason": "customer asked"}, follow=True)

    assert broker.llen(key) == 2
    from_beat, from_console = _messages(broker, key)[::-1]  # LPUSH: the newest is first
    for message in (from_beat, from_console):
        assert message["headers"]["periodic_task_name"] == name
        assert message["headers"]["x-team"] == "ops"
        assert message["headers"]["expires"]  # expire_seconds became an expiry time
    # (beat also marks its own sends celery_beat_task; a run now is not one of them)
    compared = ("task", "periodic_task_name", "x-team", "kwargsrepr", "argsrepr", "retries", "eta")
    assert {k: from_console["headers"][k] for k in compared} == {
        k: from_beat["headers"][k] for k in compared}
    for part in ("priority", "delivery_info"):
        assert from_console["properties"][part] == from_beat["properties"][part]
    assert from_console["properties"]["priority"] == 7
    assert from_console["properties"]["delivery_info"]["routing_key"] == queue
    task_id = from_console["headers"]["id"]
    entry = AuditEntry.objects.get(action="schedule.run")
    assert (entry.target, entry.reason, entry.outcome, entry.detail["task_id"]) == (
        name, "customer asked", "ok", task_id)
    page = response.content.decode()
    assert reverse("admin:taskops_taskrun_detail", args=[task_id]) in page

    start_worker(queue)
    poll_until(lambda: TaskResult.objects.filter(periodic_task_name=name, status="SUCCESS").count() == 2,
               timeout=30, message="both runs finish under the schedule's name")
    listing = client.get(reverse(LIST), {"q": name}).content.decode()
    assert 'data-last-run="SUCCESS"' in listing
    assert 'data-run-strip="2"' in listing
    assert reverse("admin:taskops_taskrun_detail", args=[task_id]) in listing


def test_run_now_follows_exchange_and_routing_key_and_refuses_broken_json(role_client, isolated_broker):
    every = IntervalSchedule.objects.create(every=1, period="hours")
    routed = PeriodicTask.objects.create(name=unique("routed"), task=TASK, interval=every,
                                         exchange="emails", routing_key="emails", enabled=False)
    broken = PeriodicTask.objects.create(name=unique("broken"), task=TASK, interval=every,
                                         kwargs="{not json", enabled=False)
    client = role_client("Operations")
    broker = redis.Redis.from_url(isolated_broker.url)

    app = celery_app()
    with app.connection_for_write() as conn:  # as a worker consuming "emails" would have
        app.amqp.queues["emails"](conn.default_channel).declare()

    client.post(reverse("admin:taskops_schedule_run", args=[routed.pk]), {"reason": ""})
    (message,) = _messages(broker, "emails")
    assert message["properties"]["delivery_info"] == {"exchange": "emails", "routing_key": "emails"}

    response = client.post(reverse("admin:taskops_schedule_run", args=[broken.pk]), {}, follow=True)
    assert response.status_code == 200
    assert "was not run: its arguments or headers are not valid JSON" in response.content.decode()
    assert AuditEntry.objects.get(target=broken.name).outcome == "refused"
    # the stock admin's "run" action 500s here; the console's list and editor show the text as is
    assert client.get(reverse(LIST)).status_code == 200
    editor = client.get(reverse("admin:django_celery_beat_periodictask_change", args=[broken.pk]))
    assert editor.status_code == 200 and "{not json" in editor.content.decode()


@pytest.mark.db_engine
def test_each_change_is_a_version_with_a_diff_and_a_restore_is_a_new_version(role_client, fake_cluster):
    client = role_client("Operations")
    name = unique("report")
    task = _add(client, name, queue="reports", kind="crontab", minute="0", hour="2",
                day_of_month="*", month_of_year="*", day_of_week="*", timezone="Europe/Berlin",
                reason="new nightly run")
    changed_before = PeriodicTasks.last_change()

    response = _edit(client, task, reason="later, after the backup", kind="crontab", minute="30",
                     hour="3", day_of_month="*", month_of_year="*", day_of_week="*",
                     timezone="Europe/Berlin")
    assert response.status_code == 302
    assert PeriodicTasks.last_change() > changed_before  # beat is told
    created, edited = ScheduleVersion.objects.filter(name=name).order_by("id")
    assert (created.action, created.reason) == ("created", "new nightly run")
    assert (edited.action, edited.reason) == ("edited", "later, after the backup")
    assert {c["field"]: (c["before"], c["after"]) for c in edited.changes} == {
        "schedule.minute": ("0", "30"), "schedule.hour": ("2", "3")}
    entry = AuditEntry.objects.get(action="schedule.edit", target=name)
    assert entry.reason == "later, after the backup" and entry.outcome == "ok"

    history = client.get(reverse("admin:django_celery_beat_periodictask_history", args=[task.pk]))
    text = history.content.decode()
    assert "later, after the backup" in text and 'data-change-field="schedule.minute"' in text
    assert f'data-restore="{created.pk}"' in text and f'data-restore="{edited.pk}"' not in text

    response = client.post(reverse("admin:taskops_schedule_restore", args=[created.pk]),
                           {"reason": "backup moved back"}, follow=True)
    assert "restored to version" in response.content.decode()
    task.refresh_from_db()
    assert (task.crontab.minute, task.crontab.hour) == ("0", "2")
    restored = ScheduleVersion.objects.filter(name=name).order_by("-id").first()
    assert (restored.action, restored.restored_from_id, restored.reason) == (
        "restored", created.pk, "backup moved back")
    assert {c["field"] for c in restored.changes} == {"schedule.minute", "schedule.hour"}
    assert AuditEntry.objects.filter(action="schedule.restore", target=name).exists()


def test_a_deleted_schedule_is_restored_from_its_versions(role_client, fake_cluster):
    client = role_client("Operations")
    name = unique("to-delete")
    task = _add(client, name, endpoint="gone", reason="temporary")
    delete = reverse("admin:django_celery_beat_periodictask_delete", args=[task.pk])

    assert client.post(delete, {"reason": ""}).status_code == 200  # a reason is required
    assert PeriodicTask.objects.filter(pk=task.pk).exists()
    assert client.post(delete, {"reason": "not needed"}).status_code == 302
    assert not PeriodicTask.objects.filter(name=name).exists()
    deleted = ScheduleVersion.objects.filter(name=name).order_by("-id").first()
    assert (deleted.action, deleted.definition, deleted.periodic_task_id) == ("deleted", {}, None)

    page = client.get(reverse("admin:taskops_schedule_versions"), {"name": name}).content.decode()
    created = ScheduleVersion.objects.get(name=name, action="created")
    assert f'data-restore="{created.pk}"' in page and f'data-restore="{deleted.pk}"' not in page
    client.post(reverse("admin:taskops_schedule_restore", args=[created.pk]), {"reason": "needed after all"})
    again = PeriodicTask.objects.get(name=name)
    assert json.loads(again.kwargs)["endpoint"] == "gone"
    assert set(ScheduleVersion.objects.filter(name=name).values_list("periodic_task_id", flat=True)) == {
        again.pk}


def _seeded(name: str, **fields) -> PeriodicTask:
    """A schedule made outside the console (seed data, code, the stock admin): no version of it."""
    crontab = CrontabSchedule.objects.create(minute="15", hour="4", timezone="Europe/Berlin")
    return PeriodicTask.objects.create(**{
        "name": name, "task": TASK, "crontab": crontab, "queue": "reports",
        "kwargs": json.dumps({"endpoint": "seeded", "fail_rate": 0}), **fields})


@pytest.mark.db_engine
def test_the_first_console_change_of_a_seeded_schedule_can_be_undone_from_its_page(
        role_client, fake_cluster):
    client = role_client("Operations")
    task = _seeded(unique("seeded"))
    seeded = definition_of(task)

    response = _edit(client, task, reason="later", kind="crontab", minute="45", hour="6",
                     day_of_month="*", month_of_year="*", day_of_week="*", timezone="Europe/Berlin",
                     kwargs=json.dumps({"endpoint": "edited", "fail_rate": 0}))

    assert response.status_code == 302
    edited, found = ScheduleVersion.objects.filter(periodic_task=task).order_by("-id")
    assert (found.action, found.actor_name, found.definition, found.changes) == (
        "found", "outside the console", seeded, [])
    assert edited.action == "edited" and {c["field"] for c in edited.changes} == {
        "schedule.minute", "schedule.hour", "kwargs"}
    history = reverse("admin:django_celery_beat_periodictask_history", args=[task.pk])
    page = client.get(history).content.decode()
    assert 'data-version-action="found"' in page and "Found (made outside the console)" in page
    assert f'data-restore="{found.pk}"' in page and f'data-restore="{edited.pk}"' not in page

    response = client.post(reverse("admin:taskops_schedule_restore", args=[found.pk]),
                           {"reason": "back to the seeded run", "next": history}, follow=True)

    assert f"restored to version {found.pk}" in response.content.decode()
    task = PeriodicTask.objects.get(pk=task.pk)
    assert definition_of(task) == seeded
    assert (task.crontab.minute, task.crontab.hour, json.loads(task.kwargs)["endpoint"]) == (
        "15", "4", "seeded")
    restored = ScheduleVersion.objects.filter(periodic_task=task).order_by("-id").first()
    assert (restored.action, restored.restored_from_id) == ("restored", found.pk)
    assert f'data-restore="{found.pk}"' not in response.content.decode()  # it is current now
    assert AuditEntry.objects.get(action="schedule.restore").outcome == "ok"

    # Console changes in a row need no more "found" versions; a change made outside in between does.
    _edit(client, task, reason="again", kind="crontab", minute="50", hour="6", day_of_month="*",
          month_of_year="*", day_of_week="*", timezone="Europe/Berlin")
    assert ScheduleVersion.objects.filter(periodic_task=task, action="found").count() == 1
    task = PeriodicTask.objects.get(pk=task.pk)
    task.description = "changed in a shell"
    task.save()
    client.post(reverse(LIST), {"action": "disable_selected", "_selected_action": [task.pk],
                                "reason": "pause it", "index": 0})
    outside = ScheduleVersion.objects.filter(periodic_task=task, action="found").order_by("-id").first()
    assert outside.changes == [{"field": "description", "before": "", "after": "changed in a shell"}]
    assert [v.action for v in ScheduleVersion.objects.filter(periodic_task=task).order_by("id")] == [
        "found", "edited", "restored", "edited", "found", "disabled"]


def test_console_changes_in_a_row_keep_no_found_version_whatever_offset_their_times_had(
        role_client, fake_cluster):
    """A definition compares equal after its save: times are kept in UTC, as the database gives them."""
    client = role_client("Operations")
    task = _add(client, unique("offsets"), start_time="2030-01-01T10:00:00+02:00",
                expires="2031-06-01T10:00:00-04:00")
    _edit(client, task, reason="faster", every="2", start_time="2030-01-01T10:00:00+02:00",
          expires="2031-06-01T10:00:00-04:00")
    _edit(client, task, reason="slower", every="3", start_time="2030-01-01T10:00:00+02:00",
          expires="2031-06-01T10:00:00-04:00")

    assert [v.action for v in ScheduleVersion.objects.filter(periodic_task=task).order_by("id")] == [
        "created", "edited", "edited"]


def test_a_deleted_seeded_schedule_is_restored_from_the_state_it_was_found_in(role_client, fake_cluster):
    client = role_client("Operations")
    name = unique("seeded-gone")
    task = _seeded(name)
    seeded = definition_of(task)

    client.post(reverse("admin:django_celery_beat_periodictask_delete", args=[task.pk]),
                {"reason": "not needed"})

    found = ScheduleVersion.objects.get(name=name, action="found")
    assert found.definition == seeded
    page = client.get(reverse("admin:taskops_schedule_versions"), {"name": name}).content.decode()
    assert f'data-restore="{found.pk}"' in page
    client.post(reverse("admin:taskops_schedule_restore", args=[found.pk]), {"reason": "needed"})
    assert definition_of(PeriodicTask.objects.get(name=name)) == seeded


def test_after_an_edit_beat_sends_a_passed_time_at_once_as_the_preview_said(
        role_client, start_worker, start_beat):
    """The issue's case with a real beat: beat counts from the last run, not from the edit."""
    queue = unique("catch-up")
    start_worker(queue, concurrency=1)
    start_beat()
    client = role_client("Operations")
    now = timezone.now()
    # Every hour at half an hour from now, last run 20 minutes ago: nothing is due.
    task = _seeded(unique("hourly"), crontab=CrontabSchedule.objects.create(
        minute=str((now.minute + 30) % 60), hour="*", timezone="UTC"), queue=queue,
        last_run_at=now - timedelta(minutes=20))
    # Edited to the minute 10 minutes ago: that time passed after the last run.
    fields = {"kind": "crontab", "minute": str((now.minute - 10) % 60), "hour": "*",
              "day_of_month": "*", "month_of_year": "*", "day_of_week": "*", "timezone": "UTC"}

    preview = client.get(reverse("admin:taskops_schedule_preview"),
                         {**fields, "enabled": "on", "pk": task.pk}).content.decode()

    first = datetime.fromisoformat(re.search(r'data-fire="([^"]+)"', preview).group(1))
    assert abs(first - timezone.now()) < timedelta(seconds=30), preview
    assert "At once: beat counts from" in preview
    assert not TaskResult.objects.filter(periodic_task_name=task.name).exists()
    assert _edit(client, task, reason="the minute ops asked for", **fields).status_code == 302
    poll_until(lambda: TaskResult.objects.filter(periodic_task_name=task.name).exists(), timeout=30,
               message="beat sends the time that passed at once, as the preview said")


def test_an_unknown_task_is_refused_unless_forced_then_recorded_and_flagged(role_client, fake_cluster):
    client = role_client("Operations")
    name = unique("future")
    data = _form(name, queue="default", endpoint="x", task="billing.tasks.not_deployed_yet",
                 kwargs="{}")

    response = client.post(reverse("admin:django_celery_beat_periodictask_add"), data)
    assert response.status_code == 200
    assert "No task &#x27;billing.tasks.not_deployed_yet&#x27; is registered" in response.content.decode()
    assert not PeriodicTask.objects.filter(name=name).exists()

    response = client.post(reverse("admin:django_celery_beat_periodictask_add"),
                           {**data, "task_forced": "on"})
    assert response.status_code == 302
    entry = AuditEntry.objects.get(action="schedule.create", target=name)
    assert entry.params["task_forced"] is True
    listing = client.get(reverse(LIST), {"q": name}).content.decode()
    assert "data-task-unknown" in listing and "unknown task" in listing


def test_celerys_own_backend_cleanup_is_a_known_task_not_an_unknown_one(role_client, fake_cluster):
    client = role_client("Operations")
    name = unique("cleanup")

    response = client.post(reverse("admin:django_celery_beat_periodictask_add"),
                           _form(name, queue="", endpoint="", task="celery.backend_cleanup",
                                 kwargs="{}"))

    assert response.status_code == 302, response.content.decode()[:2000]
    listing = client.get(reverse(LIST), {"q": name}).content.decode()
    assert name in listing and "data-task-unknown" not in listing


@pytest.mark.db_engine
def test_a_stale_edit_is_refused_instead_of_overwriting_a_newer_change(role_client, fake_cluster):
    client = role_client("Operations")
    task = _add(client, unique("shared"))
    opened = definition_fingerprint(definition_of(task))
    _edit(client, task, reason="first editor", every="5")

    response = _edit(client, task, reason="second editor", every="9", based_on=opened)

    assert response.status_code == 200
    assert "Someone changed this schedule after you opened it" in response.content.decode()
    task.refresh_from_db()
    assert task.interval.every == 5
    assert AuditEntry.objects.get(reason="second editor").outcome == "refused"


def test_clone_and_enable_actions_need_a_reason_and_keep_versions(role_client, fake_cluster):
    client = role_client("Operations")
    name = unique("base")
    task = _add(client, name, enabled="")

    response = client.post(reverse(LIST), {"action": "enable_selected", "_selected_action": [task.pk],
                                           "reason": "", "index": 0}, follow=True)
    assert "Give a reason" in response.content.decode()
    assert not PeriodicTask.objects.get(pk=task.pk).enabled
    client.post(reverse(LIST), {"action": "enable_selected", "_selected_action": [task.pk],
                                "reason": "go live", "index": 0})
    assert PeriodicTask.objects.get(pk=task.pk).enabled

    response = client.post(reverse("admin:taskops_schedule_clone", args=[task.pk]),
                           {"reason": "same for EU"}, follow=True)
    clone = PeriodicTask.objects.get(name=f"{name} (copy)")
    assert response.redirect_chain[-1][0] == reverse("admin:django_celery_beat_periodictask_change",
                                                     args=[clone.pk])
    assert not clone.enabled and clone.kwargs == task.kwargs
    assert ScheduleVersion.objects.get(periodic_task=clone).action == "cloned"
    assert [v.action for v in ScheduleVersion.objects.filter(periodic_task=task).order_by("id")] == [
        "created", "enabled"]


@pytest.mark.db_engine
def test_the_list_makes_the_same_number_of_queries_for_5_or_60_schedules(role_client, fake_cluster):
    every = IntervalSchedule.objects.create(every=10, period="minutes")
    client = role_client("Operations")

    def add(count: int) -> None:
        tasks = PeriodicTask.objects.bulk_create(
            PeriodicTask(name=unique("many"), task=TASK, interval=every) for _ in range(count))
        TaskResult.objects.bulk_create(
            TaskResult(task_id=unique("run"), task_name=TASK, status="SUCCESS",
                       periodic_task_name=t.name, date_done=timezone.now())
            for t in tasks for _ in range(3))

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(reverse(LIST)).status_code == 200
        return len(captured)

    add(5)
    queries()  # the first page of a session also reads what later pages find cached
    few = queries()
    add(55)
    assert queries() == few
    assert client.get(reverse(LIST)).content.decode().count('data-run-strip="3"') == 60


ROLE_STATUS = {  # (read, edit)
    "superuser": (200, 200), "Operations": (200, 200),
    "Support": (200, 403), "Managers": (200, 403), "staff": (403, 403),
}


@pytest.mark.parametrize("role", ROLE_STATUS)
def test_operations_edit_and_run_support_and_managers_read(role, role_client, fake_cluster):
    every = IntervalSchedule.objects.create(every=10, period="minutes")
    task = PeriodicTask.objects.create(name=unique("perm"), task=TASK, interval=every, enabled=False)
    client = role_client(role)
    read, edit = ROLE_STATUS[role]
    change = reverse("admin:django_celery_beat_periodictask_change", args=[task.pk])

    for url in (reverse(LIST), change,
                reverse("admin:django_celery_beat_periodictask_history", args=[task.pk])):
        assert client.get(url).status_code == read, url
    for url in (reverse("admin:django_celery_beat_periodictask_add"),
                reverse("admin:django_celery_beat_periodictask_delete", args=[task.pk])):
        assert client.get(url).status_code == (edit if read == 200 else 403), url
    # invalid input: the form comes back with its errors (200) for editors, 403 for the others
    assert client.post(change, {"name": ""}).status_code == (edit if read == 200 else 403)
    response = client.post(reverse(LIST), {"action": "disable_selected", "_selected_action": [task.pk],
                                           "reason": "x", "index": 0})
    if edit == 200:
        assert response.status_code == 302
        assert AuditEntry.objects.filter(action="schedule.disable").exists()
        return
    # readers are offered no action: the list comes back and nothing is done
    assert response.status_code == read
    assert not AuditEntry.objects.exclude(action="request.refused").exists()  # only the 403s
    if read == 200:
        page = client.get(change).content.decode()
        assert re.search(r'<input type="text" name="name"[^>]* disabled', page)
        assert "Save and continue editing" not in page
        assert reverse("admin:taskops_schedule_run", args=[task.pk]) not in page


SCHEDULE_FIELDS = ["name", "task", "task_forced", "kind", "minute", "hour", "day_of_month",
                   "month_of_year", "day_of_week", "timezone", "every", "period", "event",
                   "latitude", "longitude", "clocked_time", "args", "kwargs", "queue", "exchange",
                   "routing_key", "priority", "headers", "start_time", "expires", "expire_seconds",
                   "one_off", "enabled", "description", "reason", "based_on", "pk"]
ODD = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["", "*", "*/0", "0-99", "61", "mon-funday", "1,2,,3", "30", "2", "29",
                     "crontab", "interval", "solar", "clocked", "seconds", "days", "sunrise",
                     "Europe/Berlin", "Mars/Base", "999999999", "-1", "1e309", "NaN", "on",
                     "[]", "{}", "[1,", '{"a": {"__type__": "datetime", "__value__": "x"}}',
                     "2026-03-08T02:30:00", "1969-12-31T23:59:59", "\x00", "<script>"]),
)


def test_no_editor_or_preview_input_gives_a_500(role_client, fake_cluster):
    client = role_client("Operations")
    client.raise_request_exception = False
    every = IntervalSchedule.objects.create(every=10, period="minutes")
    task = PeriodicTask.objects.create(name=unique("fuzz"), task=TASK, interval=every, enabled=False)
    urls = [reverse("admin:django_celery_beat_periodictask_add"),
            reverse("admin:django_celery_beat_periodictask_change", args=[task.pk])]

    @settings(max_examples=40, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(data=st.dictionaries(st.sampled_from(SCHEDULE_FIELDS), ODD, max_size=12))
    def check(data):
        preview = client.get(reverse("admin:taskops_schedule_preview"), data)
        # A NUL in the address is refused by RejectNulMiddleware before any view runs.
        nul = any("\x00" in str(value) for value in data.values())
        assert preview.status_code == (400 if nul else 200), (data, preview.status_code)
        for url in urls:
            response = client.post(url, data)
            assert response.status_code in (200, 302), (url, data, response.status_code)

    check()


def test_with_the_broker_down_the_pages_answer_with_a_banner_and_run_now_says_it_failed(
    role_client, isolated_broker
):
    every = IntervalSchedule.objects.create(every=10, period="minutes")
    task = PeriodicTask.objects.create(name=unique("offline"), task="billing.tasks.elsewhere",
                                       interval=every, queue="default", enabled=False)
    client = role_client("Operations")
    isolated_broker.stop()

    started = time.monotonic()
    listing = client.get(reverse(LIST))
    editor = client.get(reverse("admin:django_celery_beat_periodictask_change", args=[task.pk]))
    assert time.monotonic() - started < 10
    assert listing.status_code == editor.status_code == 200
    assert "not registered here" in listing.content.decode()  # the workers could not be asked
    assert "The broker is not answering" in editor.content.decode()
    response = client.post(reverse("admin:taskops_schedule_run", args=[task.pk]),
                           {"reason": "try anyway"}, follow=True)
    assert "the broker did not answer" in response.content.decode()
    assert AuditEntry.objects.get(action="schedule.run").outcome == "failed"
