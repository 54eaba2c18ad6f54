"""Replies to the console's broadcasts are counted until one deadline, the same way on Redis and RabbitMQ."""

from __future__ import annotations

import os
import signal
import threading
import time
from contextlib import contextmanager

import pytest

from taskops import control
from taskops.models import PendingRevoke, WorkerSeen
from taskops.services import task_revoke
from tests.support.poll import poll_until
from tests.support.rabbitmq import on_both_brokers
from tests.support.tasks import unique

pytestmark = pytest.mark.django_db(transaction=True)


@contextmanager
def frozen(worker):
    """The worker's main process (the one that answers remote control) stopped, then continued."""
    os.kill(worker.process.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(worker.process.pid, signal.SIGCONT)


@on_both_brokers()
def test_replies_are_awaited_by_name_until_one_deadline(start_worker, actor, settings):
    """Under load the sampler may take a busy worker for offline; it still answers a revoke. Its
    reply must not end the wait for the worker the console awaited (kombu counts any reply);
    and a worker that stays silent is missing once the one deadline has passed."""
    settings.TASKOPS_CONTROL_TIMEOUT = 20  # generous: the wait ends when the awaited one answers
    slow, unawaited = start_worker(unique("a")), start_worker(unique("b"))
    WorkerSeen.objects.filter(name=unawaited.name).update(online=False)
    task_id = unique("never-sent")
    outcome = {}

    with frozen(slow):
        revoking = threading.Thread(target=lambda: outcome.update(
            result=task_revoke(actor=actor, task_ids=[task_id])))
        revoking.start()
        poll_until(lambda: f"Tasks flagged as revoked: {task_id}" in unawaited.log_text(),
                   timeout=30, message="the worker nobody awaited has answered")
    revoking.join(timeout=60)

    assert not revoking.is_alive()
    assert outcome["result"].ok, outcome["result"].message
    assert set(PendingRevoke.objects.get(task_id=task_id).acknowledged_by) == {slow.name, unawaited.name}

    settings.TASKOPS_CONTROL_TIMEOUT = 1
    with frozen(slow):
        started = time.monotonic()
        result = control.rate_limit("demo.tasks.generate_report", "5/m",
                                    destination=[unawaited.name, slow.name])
        took = time.monotonic() - started

    assert set(result.replies) == {unawaited.name}
    assert result.missing == (slow.name,)
    assert took < 10, took  # one deadline (1 s), not one wait per reply
