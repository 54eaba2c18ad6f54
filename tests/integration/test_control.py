"""taskops.control and taskops.broker against the live worker and broker."""

import time

import pytest

from taskops.broker import broker_status
from taskops.conf import celery_app
from taskops.control import worker_ping, worker_stats
from tests.support.processes import free_port
from tests.support.tasks import point_app_at


def test_ping_by_name_answers_from_the_live_worker(celery_worker):
    pings = worker_ping(destination=[celery_worker.name])

    assert [(p.name, p.ok) for p in pings] == [(celery_worker.name, True)]


def test_ping_of_an_unknown_worker_is_empty_not_success(celery_worker):
    assert worker_ping(destination=["nobody@nowhere"], timeout=0.3) == []


def test_stats_report_the_prefork_pool_of_the_live_worker(celery_worker):
    stats = worker_stats(destination=[celery_worker.name])

    mine = stats[celery_worker.name]
    assert mine.pool_implementation == "TaskPool"  # celery.concurrency.prefork:TaskPool
    assert mine.pool_max_concurrency == 2
    assert len(mine.pool_processes) == 2
    assert mine.pid == celery_worker.process.pid


@pytest.mark.django_db(transaction=True)
def test_stats_count_the_tasks_the_worker_has_started(celery_worker):
    before = worker_stats(destination=[celery_worker.name])[celery_worker.name].tasks_started
    celery_app().send_task("demo.tasks.flaky_call", args=["count"], kwargs={"fail_rate": 0.0}).get(
        timeout=30
    )
    after = worker_stats(destination=[celery_worker.name])[celery_worker.name].tasks_started

    assert after == before + 1


def test_broker_status_is_ok_against_the_live_broker(redis_url):
    status = broker_status()

    assert status.ok, status.error
    assert status.transport == "redis"
    assert status.latency_ms is not None


@pytest.fixture
def dead_broker():
    """Point the console's app at a port where nothing listens, then restore it."""
    original = point_app_at(f"redis://127.0.0.1:{free_port()}/0")
    yield
    point_app_at(original)


def test_a_dead_broker_gives_a_bounded_failure_not_a_hang(dead_broker):
    started = time.monotonic()
    status = broker_status(timeout=1.0)
    elapsed = time.monotonic() - started

    assert not status.ok
    assert "unreachable" in status.error
    assert elapsed < 2.5, f"broker check took {elapsed:.1f} s"


def test_control_calls_against_a_dead_broker_fail_fast_with_broker_unavailable(dead_broker):
    from taskops.control import BrokerUnavailable, revoke

    for call in (lambda: worker_ping(), lambda: revoke(["some-id"])):
        started = time.monotonic()
        with pytest.raises(BrokerUnavailable):
            call()
        assert time.monotonic() - started < 3.0
