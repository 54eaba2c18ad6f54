"""Faithful retry against live workers: captured calls, one run, bulk jobs killed and resumed."""

from __future__ import annotations

import os
import signal
import uuid
from datetime import datetime, timezone

import pytest
from django_celery_results.models import TaskResult
from kombu.utils.json import dumps

from demo.models import PartnerStatus
from taskops import control
from taskops.capture import CALL_KEY, CAPTURE_VERSION, RETRY_OF_HEADER, CapturedCall, call_from_meta
from taskops.models import AuditEntry, RetryJob, RetryJobItem, RunRetry
from taskops.services import retry_job_create, retry_job_process, task_retry
from taskops.publish import calls_publish
from taskops.services.retries import retry_plans
from taskops.services.retry_jobs import retry_job_claim
from tests.support.poll import poll_until
from tests.support.tasks import send, unique, waiting

pytestmark = pytest.mark.django_db(transaction=True)

FLAKY = "demo.tasks.flaky_call"




def row(task_id: str) -> TaskResult | None:
    return TaskResult.objects.filter(task_id=task_id).first()


def finished(task_id: str) -> TaskResult | None:
    found = row(task_id)
    return found if found and found.status in ("SUCCESS", "FAILURE", "REVOKED") else None


def test_a_failed_run_is_retried_with_exactly_its_original_values_queue_and_priority(
    start_worker, actor
):
    queue = unique("billing")
    start_worker(queue)
    PartnerStatus.objects.create(name="billing", down=True)
    account, since = uuid.uuid4(), datetime(2026, 3, 29, 1, 30, 15, 123456, tzinfo=timezone.utc)
    note = "é" + "x" * 2500 + "€"  # over 2 KB: the stored repr is cut at 1 KB, the capture is not
    original = send("demo.tasks.sync_invoices", args=[account, since], kwargs={"note": note},
                    queue=queue, priority=6)
    failed = poll_until(lambda: finished(original.id), timeout=30, message="the original fails")
    assert failed.status == "FAILURE" and "billing partner is down" in failed.traceback
    captured = call_from_meta(failed.meta)
    assert isinstance(captured, CapturedCall)
    assert captured.args == [account, since] and captured.kwargs == {"note": note}
    assert (captured.routing_key, captured.priority) == (queue, 6)

    PartnerStatus.objects.filter(name="billing").update(down=False)
    outcome = task_retry(actor=actor, task_ids=[original.id], reason="partner is back")

    assert outcome.ok, outcome.message
    link = RunRetry.objects.get(original_task_id=original.id)
    retried = poll_until(lambda: finished(link.retry_task_id), timeout=30, message="the retry ends")
    assert retried.status == "SUCCESS", retried.traceback
    received = retried.result
    import json

    received = json.loads(received)
    assert received["account_id"] == str(account)
    assert received["since"] == since.isoformat()
    assert received["types"] == ["UUID", "datetime", "str"]
    assert received["note_length"] == len(note)
    assert (received["queue"], received["priority"]) == (queue, 6)
    retry_call = call_from_meta(retried.meta)
    assert retry_call.headers[RETRY_OF_HEADER] == original.id
    entry = AuditEntry.objects.get(action="task.retry")
    assert (entry.outcome, entry.reason, entry.target) == ("ok", "partner is back", original.id)


def test_retried_keyword_arguments_keep_their_types(start_worker, actor):
    """A UUID and a datetime passed by keyword reach the retry as a UUID and a datetime."""
    import json

    queue = unique("billing-kw")
    start_worker(queue)
    PartnerStatus.objects.create(name="billing", down=True)
    account, since = uuid.uuid4(), datetime(2026, 10, 25, 0, 45, 5, 250000, tzinfo=timezone.utc)
    original = send("demo.tasks.sync_invoices", kwargs={"account_id": account, "since": since,
                                                        "note": "by keyword"}, queue=queue)
    poll_until(lambda: finished(original.id), timeout=30, message="the original fails")
    captured = call_from_meta(row(original.id).meta)
    assert captured.args == [] and captured.kwargs == {"account_id": account, "since": since,
                                                       "note": "by keyword"}

    PartnerStatus.objects.filter(name="billing").update(down=False)
    assert task_retry(actor=actor, task_ids=[original.id]).ok
    retry_id = RunRetry.objects.get(original_task_id=original.id).retry_task_id
    retried = poll_until(lambda: finished(retry_id), timeout=30, message="the retry ends")

    assert retried.status == "SUCCESS", retried.traceback
    received = json.loads(retried.result)
    assert received["types"] == ["UUID", "datetime", "str"]
    assert (received["account_id"], received["since"]) == (str(account), since.isoformat())


def test_runs_without_a_faithful_capture_are_refused_with_the_reason(actor, isolated_broker):
    TaskResult.objects.create(task_id="legacy-run", task_name=FLAKY, status="FAILURE",
                              task_args="\"('x',)\"", meta=None)
    TaskResult.objects.create(task_id="running-run", task_name=FLAKY, status="STARTED")

    outcome = task_retry(actor=actor, task_ids=["legacy-run", "running-run", "no-such-run"])

    assert outcome.outcome == "refused"
    refused = outcome.detail["refused"]
    assert "no call was captured" in refused["legacy-run"]
    assert "the run is started" in refused["running-run"]
    assert "no such run" in refused["no-such-run"]
    assert not RunRetry.objects.exists()
    assert waiting("default") == 0


def _failed_runs(n: int, queue: str) -> list[str]:
    """n FAILURE rows whose meta holds a capture as the worker hook writes it."""
    ids = [f"orig-{uuid.uuid4()}" for _ in range(n)]
    TaskResult.objects.bulk_create([
        TaskResult(
            task_id=task_id, task_name=FLAKY, status="FAILURE", content_type="application/json",
            meta=dumps({"children": [], CALL_KEY: {
                "v": CAPTURE_VERSION, "task": FLAKY, "args": [f"endpoint-{i}"],
                "kwargs": {"fail_rate": 0.0}, "exchange": queue, "routing_key": queue,
                "priority": 0, "time_limit": None, "soft_time_limit": None, "headers": {},
            }}),
        )
        for i, task_id in enumerate(ids)
    ])
    return ids


def executed(worker, task_name: str = FLAKY) -> int:
    stats = control.worker_stats(destination=[worker.name]).get(worker.name)
    return stats.total_tasks.get(task_name, 0) if stats else -1


@pytest.mark.db_engine
def test_bulk_retry_of_1000_runs_killed_halfway_and_resumed_sends_each_exactly_once(
    start_worker, actor
):
    queue = unique("bulk")
    originals = _failed_runs(1000, queue)
    executor = start_worker(queue, concurrency=2)
    slow_runner = {"TASKOPS_RETRY_CHUNK_SIZE": "100", "TASKOPS_RETRY_CHUNK_DELAY": "0.3",
                   "TASKOPS_RETRY_LEASE_SECONDS": "2"}
    runner = start_worker("default", concurrency=1, env=slow_runner)

    job = retry_job_create(actor=actor, task_ids=iter(originals), description="1000 failed runs",
                           reason="partner outage is over")

    assert job.total == 1000
    poll_until(lambda: RetryJob.objects.get(pk=job.pk).sent >= 300, timeout=60,
               message="the job is under way")
    os.killpg(runner.process.pid, signal.SIGKILL)  # the runner dies mid-job
    runner.process.wait()
    halfway = RetryJob.objects.get(pk=job.pk)
    assert 300 <= halfway.sent < 1000 and halfway.state == "running"

    start_worker("default", concurrency=1, env=slow_runner)
    from django.utils import timezone

    from taskops.services import retry_job_resume

    # The dead runner's lease (2 s) must run out first: a worker can start faster than that.
    poll_until(lambda: (RetryJob.objects.get(pk=job.pk).lease_until or timezone.now()) <= timezone.now(),
               timeout=10, message="the dead runner's lease runs out")
    assert retry_job_resume(actor=actor, job_id=job.pk).ok
    done = poll_until(lambda: RetryJob.objects.filter(pk=job.pk, state="done").first(),
                      timeout=120, message="the resumed job finishes")
    assert (done.sent, done.refused) == (1000, 0)
    poll_until(lambda: executed(executor) >= 1000, timeout=120, message="every retry ran")
    poll_until(lambda: waiting(queue) == 0
               and not control.worker_snapshots([executor.name])[executor.name].active,
               timeout=30, message="nothing left to run")
    assert executed(executor) == 1000  # not one run twice
    assert RunRetry.objects.filter(job=job).values("original_task_id").distinct().count() == 1000
    assert RetryJobItem.objects.filter(job=job, state="sent").count() == 1000


@pytest.mark.db_engine
def test_a_runner_dying_between_publish_and_confirm_never_causes_a_second_run(
    start_worker, actor
):
    queue = unique("window")
    originals = _failed_runs(50, queue)
    job = RetryJob.objects.create(description="crash window", total=50)
    RetryJobItem.objects.bulk_create(RetryJobItem(job=job, task_id=t) for t in originals)
    items = list(job.items.order_by("id"))
    claimed, plans = retry_job_claim(job, items)
    sends = [(i.retry_task_id, plans[i.task_id].call, i.task_id) for i in claimed]

    first = start_worker(queue)
    calls_publish(sends[:10])  # these run ...
    poll_until(lambda: executed(first) == 10, timeout=30, message="the first 10 ran")
    first.stop()
    calls_publish(sends[10:25])  # ... these wait in the queue; the runner "dies" before confirming
    assert waiting(queue) == 15

    resumed = retry_job_process(job.pk, owner="resumer")

    assert (resumed.state, resumed.sent) == ("done", 50)
    second = start_worker(queue)
    poll_until(lambda: executed(second) >= 40, timeout=60, message="the re-sent retries ran")
    poll_until(lambda: waiting(queue) == 0
               and not control.worker_snapshots([second.name])[second.name].active,
               timeout=30, message="the queue is drained")
    assert executed(second) == 40  # 15 unconfirmed were revoked and re-sent, 25 never sent
    stale = [retry_id for retry_id, _call, _orig in sends[10:25]]
    poll_until(lambda: TaskResult.objects.filter(task_id__in=stale, status="REVOKED").count() == 15,
               timeout=30, message="the unconfirmed sends were discarded, not run")
    assert RunRetry.objects.filter(job=job).count() == 50
    assert len(retry_plans(originals)) == 50


@pytest.mark.db_engine
def test_a_job_fanned_out_to_publisher_processes_in_a_worker_sends_each_run_exactly_once(
    start_worker, actor
):
    queue = unique("fanout")
    originals = _failed_runs(1000, queue)
    executor = start_worker(queue, concurrency=2)
    # The runner forks 2 publisher processes from its prefork child: 10 chunks, 3 in flight.
    start_worker("default", concurrency=1, env={"TASKOPS_RETRY_CHUNK_SIZE": "100",
                                                "TASKOPS_RETRY_PUBLISHERS": "2"})

    job = retry_job_create(actor=actor, task_ids=iter(originals), description="fanned out",
                           reason="partner outage is over")

    done = poll_until(lambda: RetryJob.objects.filter(pk=job.pk, state="done").first(),
                      timeout=120, message="the job finishes")
    assert (done.sent, done.refused, done.last_error) == (1000, 0, "")
    poll_until(lambda: executed(executor) >= 1000, timeout=120, message="every retry ran")
    poll_until(lambda: waiting(queue) == 0
               and not control.worker_snapshots([executor.name])[executor.name].active,
               timeout=30, message="nothing left to run")
    assert executed(executor) == 1000
    links = RunRetry.objects.filter(job=job)
    assert links.count() == 1000 and links.values("original_task_id").distinct().count() == 1000
    assert TaskResult.objects.filter(task_id__in=links.values("retry_task_id"),
                                     status="SUCCESS").count() == 1000


def _dies_halfway_through(sends, **options):
    """A publisher that sends half of the chunk holding the victim run, then dies without a word."""
    if any(s[2] == _dies_halfway_through.victim for s in sends):
        _dies_halfway_through.publish(sends[: len(sends) // 2], **options)
        os._exit(1)
    return _dies_halfway_through.publish(sends, **options)


@pytest.mark.db_engine
def test_a_publisher_process_dying_mid_chunk_fails_the_job_and_the_resume_sends_nothing_twice(
    isolated_broker, start_worker, actor, settings, monkeypatch
):
    from taskops.services import retry_jobs as runs

    settings.TASKOPS_RETRY_CHUNK_SIZE, settings.TASKOPS_RETRY_PUBLISHERS = 100, 2
    queue = unique("dying")
    originals = _failed_runs(1000, queue)
    job = RetryJob.objects.create(description="publisher dies", total=1000)
    RetryJobItem.objects.bulk_create(RetryJobItem(job=job, task_id=t) for t in originals)
    _dies_halfway_through.victim, _dies_halfway_through.publish = originals[450], runs.calls_publish
    monkeypatch.setattr(runs, "calls_publish", _dies_halfway_through)  # in the forked publishers

    failed = retry_job_process(job.pk, owner="first")

    assert failed.state == "failed" and "publisher" in failed.last_error, failed.last_error
    claimed = RetryJobItem.objects.filter(job=job, state="claimed").count()
    assert 100 <= claimed <= 300  # the chunk it died in, and any other still in flight
    published = waiting(queue)
    assert failed.sent + 50 <= published  # half of the dying chunk reached the queue
    monkeypatch.undo()

    resumed = retry_job_process(job.pk, owner="second")

    assert (resumed.state, resumed.sent, resumed.refused) == ("done", 1000, 0)
    worker = start_worker(queue, concurrency=2)  # takes the kept revokes before consuming
    poll_until(lambda: waiting(queue) == 0
               and not control.worker_snapshots([worker.name])[worker.name].active,
               timeout=120, message="the queue is drained")
    assert executed(worker) == 1000  # the unconfirmed copies were discarded, not run
    assert RunRetry.objects.filter(job=job).values("original_task_id").distinct().count() == 1000


def test_the_console_publishes_the_same_message_celery_send_task_does(isolated_broker):
    """The console's sender (Celery's router, as_task_v2 and send_task_message, looked up once per
    batch) and app.send_task put the same message in the same Redis list."""
    import json as jsonlib

    import redis

    from taskops.conf import celery_app

    app = celery_app()
    client = redis.Redis.from_url(isolated_broker.url)
    call = CapturedCall(task=FLAKY, args=["endpoint", {"at": datetime(2026, 1, 2, tzinfo=timezone.utc)}],
                        kwargs={"fail_rate": 0.0}, routing_key="reports", priority=6,
                        time_limit=30, soft_time_limit=20, headers={"tenant": "acme"})
    calls_publish([("console-id", call, "original-id")], sent_events=False)
    with app.connection_for_write() as conn:
        app.send_task(FLAKY, args=call.args, kwargs=call.kwargs, task_id="celery-id", queue="reports",
                      priority=6, time_limit=30, soft_time_limit=20,
                      headers={"tenant": "acme", RETRY_OF_HEADER: "original-id"}, connection=conn,
                      add_to_parent=False)
    key = "reports\x06\x166"  # the priority 6 list of the queue
    assert client.llen(key) == 2
    celery_sent, console_sent = (jsonlib.loads(m) for m in client.lrange(key, 0, 1))

    def comparable(message: dict) -> dict:
        headers = {k: v for k, v in message["headers"].items() if k not in ("id", "root_id")}
        properties = {k: v for k, v in message["properties"].items()
                      if k not in ("correlation_id", "delivery_tag")}
        return {**message, "headers": headers, "properties": properties}

    assert console_sent["headers"]["id"] == console_sent["headers"]["root_id"] == "console-id"
    assert comparable(console_sent) == comparable(celery_sent)


def test_a_retry_keeps_the_argument_reprs_the_original_was_shown_with(isolated_broker, actor):
    """A sender that masked a secret with argsrepr keeps it masked in the retry's repr."""
    import json as jsonlib

    import redis

    queue = unique("masked")
    [original] = _failed_runs(1, queue)
    TaskResult.objects.filter(task_id=original).update(
        task_args=jsonlib.dumps("('endpoint-0', '<card number>')"), task_kwargs=jsonlib.dumps("{}"))

    assert task_retry(actor=actor, task_ids=[original]).ok

    [message] = redis.Redis.from_url(isolated_broker.url).lrange(queue, 0, -1)
    headers = jsonlib.loads(message)["headers"]
    assert (headers["argsrepr"], headers["kwargsrepr"]) == ("('endpoint-0', '<card number>')", "{}")
    assert headers[RETRY_OF_HEADER] == original
