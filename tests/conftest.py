"""Fixtures for the whole suite: a real Redis broker and a real Celery worker on the test database."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.processes import RedisServer, WorkerProcess, database_url, unique_worker_name


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory) -> str:
    """The test broker: TASKOPS_TEST_REDIS_URL when given, else an embedded redis-server."""
    given = os.environ.get("TASKOPS_TEST_REDIS_URL")
    if given:
        yield given
        return
    server = RedisServer.start(tmp_path_factory.mktemp("redis"))
    yield server.url
    server.stop()


@pytest.fixture(scope="session", autouse=True)
def _celery_uses_test_broker(redis_url):
    """Point the console's Celery app at the test broker before anything connects."""
    from django.conf import settings

    from taskops.conf import celery_app

    app = celery_app()
    settings.CELERY_BROKER_URL = redis_url
    app.conf.broker_url = redis_url
    yield


@pytest.fixture(scope="session")
def var_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("var")


@pytest.fixture(scope="session")
def test_database_url(django_db_setup, django_db_blocker) -> str:
    """A DATABASE_URL for other processes (workers, beat) that points at the test database."""
    from django.db import connection

    return database_url(connection.settings_dict)


@pytest.fixture(scope="session")
def celery_worker(redis_url, test_database_url, var_dir):
    """One real prefork worker (2 processes, events on) consuming the console's queues."""
    worker = WorkerProcess(
        name=unique_worker_name("session"),
        broker_url=redis_url,
        database_url=test_database_url,
        var_dir=var_dir,
    ).start()
    yield worker
    worker.stop()
