"""The live pages over HTTP: who may see and do what, CSRF, GET safety, and banners on failure."""

from __future__ import annotations

import os
import signal
import time

import pytest
from django.test import Client
from django.urls import get_resolver, reverse

from taskops.models import AuditEntry, QueuePause
from tests.support.faults import FAILURES, broker_failing
from tests.support.tasks import send, unique
from tests.support.poll import poll_until

pytestmark = pytest.mark.django_db(transaction=True)

ROLES = ("superuser", "Operations", "Support", "Managers", "staff", "anonymous")
READERS = {"superuser": 200, "Operations": 200, "Support": 200, "Managers": 200, "staff": 403}
OPS_ONLY = {"superuser": 302, "Operations": 302, "Support": 403, "Managers": 403, "staff": 403}
SUPPORT_TOO = {**OPS_ONLY, "Support": 302}
WORKER = "nobody@nowhere"
RUN = "run-for-permissions"
JOB = 4242
APPROVAL = 77
TASK = "demo.tasks.generate_report"
REPORT = "daily-reports"
SCHEDULE = 4343  # a periodic task (existing_run_and_job) and a schedule version id (none)
VERSION = 4344

# Every URL the console adds: (url name, args) -> expected status per role.
# GET pages answer 200 or 403; POST actions, sent with input that fails validation, answer
# 302 (back to the page with the reason) when allowed, 403 otherwise. Anonymous: login redirect.
GET_PAGES = {
    ("admin:taskops_queue_changelist", ()): READERS,
    ("admin:taskops_queue_detail", ("default",)): READERS,
    ("admin:taskops_worker_changelist", ()): READERS,
    ("admin:taskops_worker_detail", (WORKER,)): READERS,
    ("admin:taskops_auditentry_changelist", ()): {**READERS, "Support": 403, "Managers": 403},
    ("admin:taskops_auditentry_export", ()): {**READERS, "Support": 403, "Managers": 403},
    ("admin:taskops_pendingaction_changelist", ()): {**READERS, "Managers": 403},
    ("admin:taskops_pendingaction_change", (APPROVAL,)): {**READERS, "Managers": 403},
    ("admin:taskops_taskrun_changelist", ()): READERS,
    ("admin:taskops_taskrun_detail", (RUN,)): READERS,
    ("admin:taskops_taskrun_job", (JOB,)): READERS,
    ("admin:taskops_taskrun_retry_matching_confirm", ()): {**READERS, "Managers": 403},
    ("admin:taskops_task_changelist", ()): READERS,
    ("admin:taskops_task_detail", (TASK,)): READERS,
    ("admin:taskops_report_changelist", ()): READERS,
    ("admin:taskops_report_detail", (REPORT,)): READERS,
    ("admin:taskops_report_export", (REPORT, "csv")): {**READERS, "Support": 403},
    # RUN is not a report run: 404 once the permission check has passed.
    ("admin:taskops_report_output", (RUN,)): {**{r: 404 for r in READERS}, "staff": 403},
    ("admin:taskops_schedule_preview", ()): READERS,
    ("admin:taskops_schedule_versions", ()): READERS,
    ("admin:taskops_schedule_export", ()): READERS,
    ("admin:taskops_schedule_import", ()): {**READERS, "Support": 403, "Managers": 403},
}
POST_ACTIONS = {
    ("admin:taskops_queue_pause", ("default",)): OPS_ONLY,
    ("admin:taskops_queue_resume", ("default",)): OPS_ONLY,
    ("admin:taskops_queue_purge", ("default",)): OPS_ONLY,
    ("admin:taskops_queue_restore", ("default",)): OPS_ONLY,
    ("admin:taskops_worker_pool", (WORKER,)): OPS_ONLY,
    ("admin:taskops_worker_autoscale", (WORKER,)): OPS_ONLY,
    ("admin:taskops_worker_rate_limit", (WORKER,)): OPS_ONLY,
    ("admin:taskops_worker_shutdown", (WORKER,)): OPS_ONLY,
    ("admin:taskops_task_revoke", ()): SUPPORT_TOO,
    ("admin:taskops_taskrun_retry", (RUN,)): SUPPORT_TOO,
    # Revealing hidden values is no group's by default (docs/operations.md).
    ("admin:taskops_taskrun_reveal", (RUN,)): {**OPS_ONLY, "Operations": 403},
    ("admin:taskops_taskrun_retry_edited", (RUN,)): {**SUPPORT_TOO, "superuser": 200,
                                                    "Operations": 200, "Support": 200},
    ("admin:taskops_taskrun_retry_matching", ()): SUPPORT_TOO,
    ("admin:taskops_taskrun_job_resume", (JOB,)): SUPPORT_TOO,
    ("admin:taskops_pendingaction_decide", (APPROVAL,)): SUPPORT_TOO,
    ("admin:taskops_pendingaction_cancel", (APPROVAL,)): SUPPORT_TOO,
    ("admin:taskops_task_run", (TASK,)): {**SUPPORT_TOO, "superuser": 200, "Operations": 200,
                                          "Support": 200},
    ("admin:taskops_schedule_restore", (VERSION,)): OPS_ONLY,
    ("admin:taskops_schedule_run", (SCHEDULE,)): OPS_ONLY,
    ("admin:taskops_schedule_clone", (SCHEDULE,)): OPS_ONLY,
    ("admin:taskops_schedule_import_confirm", ()): OPS_ONLY,
}
# Input each action refuses before it touches the cluster (missing or malformed fields).
# (retry-edited and the catalog's run form show the form again with the errors: 200;
# retry-matching with a filter that matches nothing retries nothing.)
INVALID = {"n": "0", "max_processes": "0", "confirm": "", "task_id": "", "task_name": "",
           "args": "not json", "status__exact": "NO-SUCH-STATE", "reason": "x" * 600}
# The audit entry's own admin URLs (history, change) are Django's: read-only for auditors.
DJANGO_OWN = {f"taskops_{model}_{view}" for model in ("auditentry", "taskrun", "pendingaction")
              for view in ("add", "change", "delete", "history")} - {"taskops_pendingaction_change"}


# The schedule editor keeps Django's URL names for the periodic task admin it replaces:
# (name, args) -> (GET status, status of a POST that fails validation) per role.
SCHEDULE_FORMS = {
    ("admin:django_celery_beat_periodictask_changelist", ()): {
        **{r: (200, 200) for r in READERS}, "staff": (403, 403)},
    ("admin:django_celery_beat_periodictask_add", ()): {
        **{r: (403, 403) for r in READERS}, "superuser": (200, 200), "Operations": (200, 200)},
    ("admin:django_celery_beat_periodictask_change", (SCHEDULE,)): {
        **{r: (200, 403) for r in READERS}, "superuser": (200, 200), "Operations": (200, 200),
        "staff": (403, 403)},
    ("admin:django_celery_beat_periodictask_delete", (SCHEDULE,)): {
        **{r: (403, 403) for r in READERS}, "superuser": (200, 200), "Operations": (200, 200)},
    ("admin:django_celery_beat_periodictask_history", (SCHEDULE,)): {
        **{r: (200, 200) for r in READERS}, "staff": (403, 403)},
}


# Console URLs outside the admin (taskops/urls.py): scrapers get 401, never a login redirect.
OUTSIDE_ADMIN = {
    ("taskops:metrics", ()): {**READERS, "anonymous": 401},
}


def _console_url_names() -> set[str]:
    admin_patterns = next(p for p in get_resolver().url_patterns if str(p.pattern) == "admin/")
    names = set()
    for pattern in admin_patterns.url_patterns:
        for sub in getattr(pattern, "url_patterns", [pattern]):
            name = getattr(sub, "name", None) or ""
            if name.startswith(("taskops_", "django_celery_beat_")):
                names.add(name)
    return names


@pytest.mark.smoke
def test_every_console_url_has_a_permission_expectation():
    expected = {name.split(":")[1] for name, _ in [*GET_PAGES, *POST_ACTIONS, *SCHEDULE_FORMS]}
    assert _console_url_names() - DJANGO_OWN == expected
    outside = {f"taskops:{p.name}" for r in get_resolver().url_patterns
               if getattr(r, "namespace", None) == "taskops" for p in r.url_patterns}
    assert outside == {name for name, _ in OUTSIDE_ADMIN}


@pytest.mark.smoke
@pytest.mark.parametrize("role", ROLES)
def test_pages_and_actions_answer_each_role_as_expected(role, role_client, fake_cluster,
                                                        existing_run_and_job):
    client = Client() if role == "anonymous" else role_client(role)
    for (name, args), by_role in GET_PAGES.items():
        response = client.get(reverse(name, args=args))
        want = 302 if role == "anonymous" else by_role[role]
        assert response.status_code == want, (name, role, response.status_code)
    for (name, args), by_role in POST_ACTIONS.items():
        response = client.post(reverse(name, args=args), INVALID)
        want = 302 if role == "anonymous" else by_role[role]
        assert response.status_code == want, (name, role, response.status_code)
        if role == "anonymous":
            assert "/admin/login/" in response["Location"]
    for (name, args), by_role in OUTSIDE_ADMIN.items():
        response = client.get(reverse(name, args=args))
        assert response.status_code == by_role[role], (name, role, response.status_code)
    for (name, args), by_role in SCHEDULE_FORMS.items():
        got = (client.get(reverse(name, args=args)).status_code,
               client.post(reverse(name, args=args), INVALID).status_code)
        assert got == ((302, 302) if role == "anonymous" else by_role[role]), (name, role, got)
    assert not QueuePause.objects.exists()
    # Invalid input changes nothing (refusals and downloads are audited, nothing else).
    assert not AuditEntry.objects.exclude(outcome="refused").exclude(action__endswith=".export").exists()


def test_get_on_an_action_url_changes_nothing(role_client, fake_cluster, existing_run_and_job):
    client = role_client("superuser")
    for name, args in POST_ACTIONS:
        assert client.get(reverse(name, args=args)).status_code == 405, name
    assert AuditEntry.objects.count() == 0
    assert not QueuePause.objects.exists()


def test_a_post_without_csrf_token_is_refused(django_user_model, fake_cluster,
                                             existing_run_and_job):
    client = Client(enforce_csrf_checks=True)
    client.force_login(django_user_model.objects.create_superuser("csrf", password="x"))
    for name, args in [*POST_ACTIONS, *SCHEDULE_FORMS]:
        assert client.post(reverse(name, args=args), {"reason": "x"}).status_code == 403, name
    # Nothing was done: each refusal is recorded, and nothing else.
    assert set(AuditEntry.objects.values_list("action", flat=True)) == {"request.csrf_failed"}
    assert AuditEntry.objects.count() == len(POST_ACTIONS) + len(SCHEDULE_FORMS)


def test_ops_pauses_a_queue_from_its_page_and_sees_the_outcome(role_client, start_worker):
    queue = unique("page")
    worker = start_worker(queue)
    client = role_client("Operations")
    page = reverse("admin:taskops_queue_detail", args=[queue])

    response = client.post(reverse("admin:taskops_queue_pause", args=[queue]),
                           {"reason": "deploy", "next": page}, follow=True)

    assert response.redirect_chain[-1][0] == page
    text = response.content.decode()
    assert f"Queue {queue} paused: {worker.name} answered." in text
    assert "paused" in text and "held workers" in text
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.target, entry.outcome, entry.reason) == ("queue.pause", queue, "ok", "deploy")
    assert entry.actor_name.startswith("operations-")


def test_a_wrong_purge_confirmation_is_explained_and_nothing_is_purged(role_client, isolated_broker):
    queue = unique("keep")
    send("demo.tasks.generate_report", args=["x"], queue=queue)
    client = role_client("Operations")

    response = client.post(reverse("admin:taskops_queue_purge", args=[queue]),
                           {"confirm": "default"}, follow=True)

    assert "Type the queue&#x27;s name" in response.content.decode()
    detail = client.get(reverse("admin:taskops_queue_detail", args=[queue])).content.decode()
    assert f'data-queue-depth="{queue}">1<' in detail


def _timed_get(client, url):
    started = time.monotonic()
    response = client.get(url)
    return response, time.monotonic() - started


LIVE_PAGES = [
    ("admin:index", ()),
    ("admin:taskops_queue_changelist", ()),
    ("admin:taskops_queue_detail", ("default",)),
    ("admin:taskops_worker_changelist", ()),
    ("admin:taskops_worker_detail", (WORKER,)),
]


@pytest.mark.parametrize("failure", FAILURES)
def test_every_page_answers_fast_with_a_banner_when_the_broker_fails(failure, role_client, isolated_broker):
    client = role_client("Operations")
    with broker_failing(isolated_broker, failure):
        for name, args in LIVE_PAGES:
            from django.core.cache import cache

            cache.clear()  # each page reads the broker itself
            response, elapsed = _timed_get(client, reverse(name, args=args))
            assert response.status_code == 200, name
            assert elapsed < 2.5, f"{name} took {elapsed:.2f} s with the broker {failure}"
            assert "The broker is not answering" in response.content.decode(), name


def test_a_frozen_worker_is_shown_as_not_answering_within_the_bound(role_client, start_worker):
    client = role_client("Operations")
    healthy, frozen = start_worker(unique("a")), start_worker(unique("b"))
    os.kill(frozen.process.pid, signal.SIGSTOP)
    try:
        response, elapsed = _timed_get(client, reverse("admin:index"))

        assert response.status_code == 200
        assert elapsed < 2.5, f"dashboard took {elapsed:.2f} s with a frozen worker"
        text = response.content.decode()
        assert "Not answering within" in text and frozen.name in text
        worker_page, elapsed = _timed_get(client, reverse("admin:taskops_worker_detail", args=[frozen.name]))
        assert elapsed < 2.5
        assert "did not answer within the time limit" in worker_page.content.decode()
        listing = client.get(reverse("admin:taskops_worker_changelist")).content.decode()
        assert listing.count('class="taskops-badge online"') == 1  # the healthy one
        assert 'class="taskops-badge not-answering"' in listing
        assert healthy.name in listing
    finally:
        os.kill(frozen.process.pid, signal.SIGCONT)


def test_a_worker_that_shut_down_is_shown_offline(role_client, start_worker):
    client = role_client("Operations")
    worker = start_worker(unique("gone"))
    worker.stop()

    poll_until(lambda: 'class="taskops-badge offline"' in
               client.get(reverse("admin:taskops_worker_changelist")).content.decode(),
               timeout=10, message="the stopped worker shows as offline")


# Every admin action of the console's lists -> the roles it is offered to (and allowed for).
ADMIN_ACTIONS = {
    ("admin:taskops_taskrun_changelist", "retry_selected"): {"superuser", "Operations", "Support"},
    **{("admin:django_celery_beat_periodictask_changelist", action): {"superuser", "Operations"}
       for action in ("enable_selected", "disable_selected", "run_selected", "clone_selected")},
}
CHANGELISTS_WITHOUT_ACTIONS = ("admin:taskops_auditentry_changelist",
                               "admin:taskops_pendingaction_changelist",
                               # read-only like the runs (taskops.admin.runs)
                               "admin:django_celery_results_groupresult_changelist")


def _offered_actions(response) -> set[str]:
    form = (response.context_data or {}).get("action_form") if hasattr(response, "context_data") else None
    return {value for value, _ in form.fields["action"].choices if value} if form else set()


@pytest.mark.parametrize("role", [r for r in ROLES if r != "anonymous"])
def test_every_admin_action_is_offered_to_exactly_the_roles_that_may_use_it(
    role, role_client, fake_cluster, existing_run_and_job
):
    client = role_client(role)
    changelists = {name for name, _ in ADMIN_ACTIONS} | set(CHANGELISTS_WITHOUT_ACTIONS)
    for changelist in sorted(changelists):
        response = client.get(reverse(changelist))
        if response.status_code == 403:
            assert role in ("staff", "Managers") or changelist.endswith("auditentry_changelist"), (
                changelist, role)
            continue
        assert response.status_code == 200, (changelist, role)
        expected = {action for (name, action), roles in ADMIN_ACTIONS.items()
                    if name == changelist and role in roles}
        assert _offered_actions(response) == expected, (changelist, role)
        for (name, action), roles in ADMIN_ACTIONS.items():
            if name == changelist and role not in roles:  # posting it anyway does nothing
                client.post(reverse(changelist), {"action": action, "_selected_action": ["1"],
                                                  "index": "0", "reason": "try"})
    # Nothing but the refused pages (403) is recorded.
    assert not AuditEntry.objects.exclude(action="request.refused").exists()


def test_every_admin_action_of_the_console_has_an_expectation(rf, django_user_model):
    from django.contrib import admin

    request = rf.get("/")
    request.user = django_user_model.objects.create_superuser("actions", password="x")
    found = set()
    for model, model_admin in admin.site._registry.items():
        if not type(model_admin).__module__.startswith("taskops."):
            continue
        changelist = f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist"
        found |= {(changelist, name) for name in model_admin.get_actions(request)}
    assert found == set(ADMIN_ACTIONS)
