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
from taskops import broker, control
from taskops.capture import CALL_KEY, CAPTURE_VERSION, RETRY_OF_HEADER, CapturedCall, call_from_meta
from taskops.models import AuditEntry, RetryJob, RetryJobItem, RunRetry
from taskops.services import retry_job_create, retry_job_process, task_retry
from taskops.services.runs import calls_publish, retry_job_claim, retry_plans
from tests.support.poll import poll_until
from tests.support.tasks import send, unique

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
    assert broker.queue_depths(["default"], discover=False).queues["default"].depth == 0


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


def test_bulk_retry_of_1000_runs_killed_halfway_and_resumed_sends_each_exactly_once(
    start_worker, actor
):
    queue = unique("bulk")
    originals = _failed_runs(1000, queue)
    executor = start_worker(queue, concurrency=2)
    slow_runner = {"TASKOPS_RETRY_CHUNK_SIZE": "100", "TASKOPS_RETRY_CHUNK_DELAY": "0.3",
                   "TASKOPS_RETRY_LEASE_SECONDS": "2"}
    runner = start_worker("default", concurrency=1, env=slow_runner)

    job = retry_job_create(actor=actor, task_ids=iter(originals), description="1000 failed runs")

    assert job.total == 1000
    poll_until(lambda: RetryJob.objects.get(pk=job.pk).sent >= 300, timeout=60,
               message="the job is under way")
    os.killpg(runner.process.pid, signal.SIGKILL)  # the runner dies mid-job
    runner.process.wait()
    halfway = RetryJob.objects.get(pk=job.pk)
    assert 300 <= halfway.sent < 1000 and halfway.state == "running"

    start_worker("default", concurrency=1, env=slow_runner)
    from taskops.services import retry_job_resume

    assert retry_job_resume(actor=actor, job_id=job.pk).ok
    done = poll_until(lambda: RetryJob.objects.filter(pk=job.pk, state="done").first(),
                      timeout=120, message="the resumed job finishes")
    assert (done.sent, done.refused) == (1000, 0)
    poll_until(lambda: executed(executor) >= 1000, timeout=120, message="every retry ran")
    poll_until(lambda: broker.queue_depths([queue], discover=False).queues[queue].depth == 0
               and not control.worker_snapshots([executor.name])[executor.name].active,
               timeout=30, message="nothing left to run")
    assert executed(executor) == 1000  # not one run twice
    assert RunRetry.objects.filter(job=job).values("original_task_id").distinct().count() == 1000
    assert RetryJobItem.objects.filter(job=job, state="sent").count() == 1000


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
    assert broker.queue_depths([queue], discover=False).queues[queue].depth == 15

    resumed = retry_job_process(job.pk, owner="resumer")

    assert (resumed.state, resumed.sent) == ("done", 50)
    second = start_worker(queue)
    poll_until(lambda: executed(second) >= 40, timeout=60, message="the re-sent retries ran")
    poll_until(lambda: broker.queue_depths([queue], discover=False).queues[queue].depth == 0
               and not control.worker_snapshots([second.name])[second.name].active,
               timeout=30, message="the queue is drained")
    assert executed(second) == 40  # 15 unconfirmed were revoked and re-sent, 25 never sent
    stale = [retry_id for retry_id, _call, _orig in sends[10:25]]
    poll_until(lambda: TaskResult.objects.filter(task_id__in=stale, status="REVOKED").count() == 15,
               timeout=30, message="the unconfirmed sends were discarded, not run")
    assert RunRetry.objects.filter(job=job).count() == 50
    assert len(retry_plans(originals)) == 50
