"""Fixtures for the whole suite: a real Redis broker and a real Celery worker on the test database."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from tests.support.fakes import FakeCluster
from tests.support.rabbitmq import RabbitVhost
from tests.support.processes import (
    BeatProcess,
    RedisServer,
    WorkerProcess,
    database_url,
    unique_worker_name,
)
from tests.support.tasks import point_app_at


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

    settings.CELERY_BROKER_URL = redis_url
    point_app_at(redis_url)
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


@pytest.fixture
def isolated_broker(tmp_path):
    """A fresh redis-server for this test only; the console's Celery app points at it meanwhile."""
    server = RedisServer.start(tmp_path / "redis")
    original = point_app_at(server.url)
    yield server
    point_app_at(original)
    server.stop()


@pytest.fixture
def live_broker(request):
    """The broker a live test's workers use: an isolated Redis (`isolated_broker`) by default, or
    a fresh RabbitMQ virtual host for a test parametrized with it (tests.support.rabbitmq
    `on_both_brokers`); the console's Celery app points at it meanwhile. Has `.url`."""
    if getattr(request, "param", "redis") == "redis":
        yield request.getfixturevalue("isolated_broker")
        return
    vhost = RabbitVhost.create()
    original = point_app_at(vhost.url)
    yield vhost
    point_app_at(original)
    vhost.delete()


@pytest.fixture
def fake_cluster(monkeypatch) -> FakeCluster:
    """The control, broker and publish adapters answered by one in-memory cluster (no broker, no worker).

    For tests of pages, permissions, fuzzing and banners; tests/integration/test_adapter_contracts.py
    holds the fakes to the real adapters. Add workers with fake_cluster.worker_add(name, *queues).
    """
    return FakeCluster().install(monkeypatch)


@pytest.fixture
def start_worker(live_broker, test_database_url, tmp_path):
    """Start real workers on the test's broker (`live_broker`): start_worker("q1", "q2", concurrency=2)."""
    started: list[WorkerProcess] = []

    def start(*queues: str, concurrency: int = 2, extra_args: tuple[str, ...] = (),
              env: dict[str, str] | None = None) -> WorkerProcess:
        worker = WorkerProcess(
            name=unique_worker_name("w"),
            broker_url=live_broker.url,
            database_url=test_database_url,
            var_dir=tmp_path / "workers",
            queues=queues,
            concurrency=concurrency,
            extra_args=extra_args,
            extra_env=env or {},
        )
        started.append(worker)
        return worker.start()

    yield start
    for worker in started:
        worker.kill()  # the test is over: no warm shutdown to wait for


@pytest.fixture
def start_beat(isolated_broker, test_database_url, tmp_path):
    """Start one real beat (DatabaseScheduler, the console's sampler inside) on the isolated broker.

    start_beat(env={"TASKOPS_SAMPLE_INTERVAL": "1"}) -> BeatProcess; stopped after the test.
    """
    started: list[BeatProcess] = []

    def start(*, env: dict[str, str] | None = None, max_interval: float = 1) -> BeatProcess:
        if started:
            raise RuntimeError("never run two beat processes")
        beat = BeatProcess(broker_url=isolated_broker.url, database_url=test_database_url,
                           var_dir=tmp_path / "beat", max_interval=max_interval,
                           extra_env=env or {})
        started.append(beat)
        return beat.start()

    yield start
    for beat in started:
        beat.stop()


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Each test reads the cluster anew (the shared reading is cached for a couple of seconds)."""
    from django.core.cache import cache

    from taskops import cache as shared
    from taskops.db_timeout import trouble_forget

    shared.process_state_reset()
    trouble_forget()  # no banner about an earlier test's slow database
    cache.clear()
    yield
    cache.clear()
    shared.process_state_reset()


@pytest.fixture
def role_client(client, django_user_model):
    """A logged-in test client for a demo role: role_client("Operations")."""
    from django.contrib.auth.models import Group

    def login(role: str):
        if role == "superuser":
            user = django_user_model.objects.create_superuser(f"su-{uuid.uuid4().hex[:6]}", password="x")
        else:
            user = django_user_model.objects.create_user(
                f"{role.lower()}-{uuid.uuid4().hex[:6]}", password="x", is_staff=True
            )
            if role != "staff":
                user.groups.add(Group.objects.get(name=role))
        client.force_login(user)
        return client

    return login


@pytest.fixture
def actor(django_user_model):
    """Someone acting through the console's services (a superuser, from 127.0.0.1)."""
    from taskops.services import Actor

    return Actor(user=django_user_model.objects.create_superuser("acting-user", password="x"),
                 ip="127.0.0.1")
