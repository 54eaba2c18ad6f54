"""Integration fixtures: a broker of the test's own, and real workers started on demand."""

from __future__ import annotations

import uuid

import pytest

from taskops.conf import celery_app
from tests.support.processes import RedisServer, WorkerProcess, unique_worker_name


def pytest_collection_modifyitems(items):
    for item in items:
        if "/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture
def isolated_broker(tmp_path):
    """A fresh redis-server for this test only; the console's Celery app points at it meanwhile."""
    server = RedisServer.start(tmp_path / "redis")
    app = celery_app()
    original = app.conf.broker_url
    app.conf.broker_url = server.url
    yield server
    app.conf.broker_url = original
    server.stop()


@pytest.fixture
def start_worker(isolated_broker, test_database_url, tmp_path):
    """Start real workers on the isolated broker: start_worker("q1", "q2", concurrency=2)."""
    started: list[WorkerProcess] = []

    def start(*queues: str, concurrency: int = 2, extra_args: tuple[str, ...] = ()) -> WorkerProcess:
        worker = WorkerProcess(
            name=unique_worker_name("w"),
            broker_url=isolated_broker.url,
            database_url=test_database_url,
            var_dir=tmp_path / "workers",
            queues=queues,
            concurrency=concurrency,
            extra_args=extra_args,
        )
        started.append(worker)
        return worker.start()

    yield start
    for worker in started:
        worker.stop()


def send(name: str, *, args=(), kwargs=None, queue: str = "default", **options):
    """Publish a task on a fresh connection (the app's producer pool may hold another broker)."""
    app = celery_app()
    with app.connection_for_write() as conn:
        return app.send_task(name, args=list(args), kwargs=kwargs or {}, queue=queue,
                             connection=conn, **options)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"
