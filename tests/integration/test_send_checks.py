"""What the run form and retry with edits may send: values every database stores, tasks and queues the console may send to."""

from __future__ import annotations

import html
import os
import signal

import pytest
import redis
from django.urls import reverse
from django_celery_results.models import TaskResult

from taskops.capture import CapturedCall
from taskops.models import AuditEntry, RetryJob, RunRetry
from taskops.services import ActionRefused, task_retry_edited, task_send
from tests.support.tasks import unique, waiting

pytestmark = pytest.mark.django_db(transaction=True)

REPORT = "demo.tasks.generate_report"


def _run_url(name: str) -> str:
    return reverse("admin:taskops_task_run", args=[name])


@pytest.mark.parametrize("field, typed", [
    ("arg_report", '"monthly\\u0000"'),
    ("arg_report", '"\\ud800"'),
    ("arg_rows", "NaN"),
    ("arg_rows", "Infinity"),
    ("arg_rows", "1e999"),
    ("arg_day", '{"when": [-Infinity]}'),
])
def test_values_no_database_stores_are_a_form_error_that_keeps_the_text(field, typed, role_client,
                                                                        isolated_broker):
    client = role_client("Support")
    posted = {"arg_report": '"r"', "queue": "reports", field: typed}

    response = client.post(_run_url(REPORT), posted)

    assert response.status_code == 200
    text = response.content.decode()
    assert "Nothing was sent: correct the form below." in text and "Not accepted:" in text
    assert html.escape(typed) in text  # what was typed is shown again, to be corrected
    assert waiting("reports") == 0
    assert not AuditEntry.objects.exists() and not TaskResult.objects.exists()


@pytest.mark.parametrize("args, kwargs, problem", [
    (["r", float("nan")], {}, "args[1] is nan"),
    (["r"], {"rows": float("inf")}, "kwargs['rows'] is inf"),
    (["r\x00"], {}, "args[0] holds a NUL character"),
    (["r"], {"day": {"\ud800": 1}}, "a key of kwargs['day'] holds a lone surrogate"),
])
def test_the_send_service_refuses_them_too_and_the_refusal_is_recorded(args, kwargs, problem, actor,
                                                                       isolated_broker):
    with pytest.raises(ActionRefused, match=problem.replace("[", r"\[").replace("]", r"\]")):
        task_send(actor=actor, name=REPORT, args=args, kwargs=kwargs, queue="reports")

    entry = AuditEntry.objects.get()
    assert (entry.action, entry.outcome) == ("task.trigger", "refused")
    assert problem in entry.message and "not recorded" in str(entry.params)
    assert waiting("reports") == 0


def test_retry_with_edits_refuses_them_in_the_form_and_in_the_service(role_client, actor,
                                                                       isolated_broker):
    TaskResult.objects.create(task_id="failed-1", task_name=REPORT, status="FAILURE")
    client = role_client("Support")

    response = client.post(reverse("admin:taskops_taskrun_retry_edited", args=["failed-1"]),
                           {"args": '["r", NaN]', "kwargs": "{}", "queue": "reports"})

    assert response.status_code == 200
    assert "Not accepted: the value at [1] is nan" in response.content.decode()
    assert html.escape('["r", NaN]') in response.content.decode()
    with pytest.raises(ActionRefused, match="lone surrogate"):
        task_retry_edited(actor=actor, task_id="failed-1", call=CapturedCall(
            task=REPORT, args=["\udc00"], kwargs={}, routing_key="reports"))
    assert list(AuditEntry.objects.values_list("action", "outcome")) == [
        ("task.retry_edited", "refused")]
    assert waiting("reports") == 0 and not RunRetry.objects.exists()


# --- What may be sent, and where (the run form and retry with edits) ----------------------------


def _broker_keys(broker) -> set[str]:
    return {k.decode() for k in redis.Redis.from_url(broker.url).keys("*")}


def _refused_entries(action: str) -> list[str]:
    return list(AuditEntry.objects.filter(action=action, outcome="refused")
                .values_list("message", flat=True))


def test_hostile_posts_to_the_run_form_are_refused_recorded_and_send_nothing_while_a_worker_is_frozen(
    role_client, start_worker, isolated_broker
):
    healthy, frozen = start_worker("default", "reports"), start_worker(unique("other"))
    job = RetryJob.objects.create(description="waits for approval", total=3)  # queued, not started
    client = role_client("superuser")
    os.kill(frozen.process.pid, signal.SIGSTOP)  # the task list is incomplete meanwhile
    try:
        hostile = [
            ("taskops.retry_job_run", {"arg_job_id": str(job.pk), "queue": "default"},
             "matches 'taskops.*' in TASKOPS_TASK_DENY"),
            ("celery.backend_cleanup", {"args": "[]", "kwargs": "{}", "queue": "default"},
             "matches 'celery.*' in TASKOPS_TASK_DENY"),
            ("billing.tasks.nobody_registers", {"args": "[]", "kwargs": "{}", "queue": "default"},
             "cannot confirm that a live worker registers billing.tasks.nobody_registers"),
            (REPORT, {"arg_report": '"r"', "queue": "x.pidbox"}, "is one of Celery's own queues"),
            (REPORT, {"arg_report": '"r"', "queue": f"{healthy.name}.celery.pidbox"},
             "is one of Celery's own queues"),
            (REPORT, {"arg_report": '"r"', "queue": "no-such-queue"}, "There is no queue"),
            (REPORT, {"arg_report": '"r"', "queue": "reports", "priority": "10"},
             "Priority must be 0–9 here"),
            (REPORT, {"arg_report": '"r"', "queue": "reports", "priority": "-1"},
             "Priority must be 0–9 here"),
        ]
        for name, posted, why in hostile:
            response = client.post(_run_url(name), posted)

            assert response.status_code == 200, (name, posted)
            assert why in html.unescape(response.content.decode()), (name, posted)
        sent = client.post(_run_url(REPORT), {"arg_report": '"r"', "queue": "reports"})
    finally:
        os.kill(frozen.process.pid, signal.SIGCONT)

    assert sent.status_code == 302  # a task a live worker confirms still goes out
    refused = _refused_entries("task.trigger")
    assert len(refused) == len(hostile) and all(why in text for (_, _, why), text in
                                                zip(hostile, refused[::-1]))
    assert not {key for key in _broker_keys(isolated_broker) if "pidbox" in key and "x." in key}
    assert waiting("default") == 0 and not TaskResult.objects.exclude(task_name=REPORT).exists()
    job.refresh_from_db()
    assert (job.state, job.sent) == ("queued", 0)


def test_the_deny_list_is_configurable_and_holds_for_superusers(actor, isolated_broker, settings):
    settings.TASKOPS_TASK_DENY = ["demo.tasks.send_*"]

    with pytest.raises(ActionRefused, match="matches 'demo.tasks.send_\\*' in TASKOPS_TASK_DENY"):
        task_send(actor=actor, name="demo.tasks.send_email", args=[1, "welcome"], kwargs={},
                  queue="emails")

    assert waiting("emails") == 0


def test_the_allow_list_restricts_a_group_that_has_an_entry(role_client, isolated_broker, settings):
    settings.TASKOPS_TASK_ALLOW = {"Support": ["demo.tasks.generate_*"]}
    support = role_client("Support")

    refused = support.post(_run_url("demo.tasks.flaky_call"),
                           {"arg_endpoint": '"partner"', "queue": "default"})
    allowed = support.post(_run_url(REPORT), {"arg_report": '"r"', "queue": "reports"})

    assert refused.status_code == 200
    assert ("Your group (Support) may send only demo.tasks.generate_* (TASKOPS_TASK_ALLOW): not "
            "demo.tasks.flaky_call.") in html.unescape(refused.content.decode())
    assert allowed.status_code == 302
    assert waiting("default") == 0 and waiting("reports") == 1
    assert role_client("Operations").post(  # no entry for Operations: not restricted
        _run_url("demo.tasks.flaky_call"), {"arg_endpoint": '"partner"', "queue": "default"}
    ).status_code == 302


def test_retry_with_edits_keeps_to_known_queues_the_brokers_priorities_and_the_deny_list(
    role_client, actor, isolated_broker
):
    TaskResult.objects.create(task_id="failed-1", task_name=REPORT, status="FAILURE")
    TaskResult.objects.create(task_id="failed-job", task_name="taskops.retry_job_run",
                              status="FAILURE")
    client = role_client("Support")
    url = reverse("admin:taskops_taskrun_retry_edited", args=["failed-1"])
    posted = {"args": '["r"]', "kwargs": "{}", "queue": "reports"}

    for changed, why in [({"queue": "x.pidbox"}, "is one of Celery's own queues"),
                         ({"queue": "typo-queue"}, "There is no queue 'typo-queue'"),
                         ({"priority": "200"}, "Priority must be 0–9 here")]:
        response = client.post(url, {**posted, **changed})
        text = html.unescape(response.content.decode())
        assert response.status_code == 200 and why in text, changed
        assert "Nothing was sent: correct the form below." in text
    denied = client.post(reverse("admin:taskops_taskrun_retry_edited", args=["failed-job"]),
                         {"args": "[1]", "kwargs": "{}", "queue": "default"})
    assert "matches 'taskops.*' in TASKOPS_TASK_DENY" in html.unescape(denied.content.decode())
    # The service refuses the same when called directly (a hostile POST never reaches a form).
    for call in [CapturedCall(task=REPORT, args=["r"], kwargs={}, routing_key="celery.pidbox"),
                 CapturedCall(task=REPORT, args=["r"], kwargs={}, routing_key="reports",
                              priority=255),
                 CapturedCall(task="celery.backend_cleanup", args=[], kwargs={},
                              routing_key="default")]:
        with pytest.raises(ActionRefused):
            task_retry_edited(actor=actor, task_id="failed-1", call=call)

    assert len(_refused_entries("task.retry_edited")) == 7
    assert not RunRetry.objects.exists()
    assert waiting("reports") == 0 and waiting("default") == 0
    assert not {key for key in _broker_keys(isolated_broker) if key.endswith("pidbox")}
