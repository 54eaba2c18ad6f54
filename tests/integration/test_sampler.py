"""The sampler runs inside a real beat process: depth history and workers seen, without any viewer."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from taskops.models import QueueDepthSample, WorkerSeen
from tests.support.poll import poll_until
from tests.support.processes import BASE_DIR
from tests.support.tasks import send

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def beat(isolated_broker, test_database_url, tmp_path):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "console.settings",
        "DJANGO_SECRET_KEY": "taskops-test-only-secret-key",
        "CELERY_BROKER_URL": isolated_broker.url,
        "DATABASE_URL": test_database_url,
        "TASKOPS_VAR_DIR": str(tmp_path),
        "TASKOPS_SAMPLE_INTERVAL": "1",
    }
    with (tmp_path / "beat.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "console", "beat", "-l", "INFO",
             "--pidfile", str(tmp_path / "beat.pid"), "-s", str(tmp_path / "beat-schedule")],
            cwd=BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    yield process
    process.terminate()
    process.wait(timeout=20)


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
