"""The sampler runs inside a real beat process: depth history and workers seen, without any viewer."""

from __future__ import annotations

import pytest

from taskops.models import QueueDepthSample, WorkerSeen
from tests.support.poll import poll_until
from tests.support.tasks import send

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def beat(start_beat):
    return start_beat(env={"TASKOPS_SAMPLE_INTERVAL": "1"})


def test_beat_samples_queue_depths_and_records_online_workers(beat, start_worker):
    for _ in range(4):
        send("demo.tasks.generate_report", args=["sampled"], queue="reports", priority=9)
    worker = start_worker("emails")  # consumes another queue: "reports" keeps its 4

    poll_until(lambda: QueueDepthSample.objects.filter(queue="reports", depth=4).exists(),
               timeout=30, message="beat recorded the depth of reports")
    assert set(QueueDepthSample.objects.values_list("queue", flat=True)) >= {"default", "reports", "emails"}
    poll_until(lambda: WorkerSeen.objects.filter(name=worker.name, online=True).exists(),
               timeout=30, message="the worker is recorded online")
    worker.stop()
    poll_until(lambda: WorkerSeen.objects.filter(name=worker.name, online=False).exists(),
               timeout=30, message="the stopped worker is recorded offline")
