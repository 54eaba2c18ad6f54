"""The console on a real RabbitMQ (a fresh virtual host per test): depths, in flight through the
management API, queues only workers know, purge, and its reading cross-checked with Celery's
inspect and `rabbitmqctl` after enqueue, pause, revoke and drain."""

from __future__ import annotations

import html

import pytest
from django.core.cache import cache
from django.urls import reverse
from django_celery_results.models import TaskResult

from taskops import broker, selectors
from taskops.conf import celery_app
from taskops.models import AuditEntry
from taskops.services import queue_pause, queue_resume, task_revoke
from tests.support.poll import poll_until
from tests.support.rabbitmq import API_URL
from tests.support.tasks import send, unique

pytestmark = [pytest.mark.amqp, pytest.mark.parametrize("live_broker", ["amqp"], indirect=True)]

REPORT = "demo.tasks.generate_report"
NOT_SET = "TASKOPS_RABBITMQ_API is not set"


@pytest.fixture
def management_api(settings) -> str:
    """The console reads RabbitMQ's management API (with the test user's credentials)."""
    settings.TASKOPS_RABBITMQ_API = API_URL
    return API_URL


def fresh_reading() -> selectors.ClusterReading:
    cache.clear()  # a new reading, not the one shared for TASKOPS_LIVE_TTL
    return selectors.cluster_reading()


def test_depths_of_existing_and_missing_queues_and_purge(live_broker):
    queue, missing = unique("amqp"), unique("missing")
    for priority in (0, 9, 9):
        send(REPORT, args=["amqp"], queue=queue, priority=priority)

    reading = broker.queue_depths([queue, missing])

    assert reading.transport == "amqp"
    assert (reading.queues[queue].depth, reading.queues[queue].consumers) == (3, 0)
    assert reading.queues[missing].exists is False
    assert reading.in_flight_total is None and NOT_SET in reading.in_flight_note
    assert broker.queue_peek(queue) == []  # RabbitMQ cannot be read without taking messages
    assert broker.queue_purge(queue) == 3
    assert broker.queue_depths([queue]).queues[queue].depth == 0


@pytest.mark.django_db(transaction=True)
def test_purging_a_queue_rabbitmq_does_not_have_is_a_message_not_a_500(live_broker, role_client):
    missing = "emails"  # configured, so the console knows it, but never declared on this vhost
    with pytest.raises(broker.QueueNotPurgeable, match="no queue"):
        broker.queue_purge(missing)

    client = role_client("Operations")
    response = client.post(reverse("admin:taskops_queue_purge", args=[missing]),
                           {"confirm": missing, "reason": "cleanup"}, follow=True)

    assert response.status_code == 200
    assert f"there is no queue '{missing}' in the broker" in html.unescape(response.content.decode())
    entry = AuditEntry.objects.get(action="queue.purge")
    assert entry.outcome == "refused"


@pytest.mark.django_db(transaction=True)
def test_a_queue_only_a_worker_consumes_is_listed_and_has_its_page(live_broker, start_worker,
                                                                   role_client):
    side = unique("unconfigured")
    worker = start_worker(side)
    send(REPORT, args=["side"], queue="default")  # a configured queue nobody consumes here

    reading = fresh_reading()

    assert reading.queue(side) is not None, [q.name for q in reading.queues]
    assert reading.queue(side).consumers == (worker.name,)
    client = role_client("Operations")
    page = client.get(reverse("admin:taskops_queue_detail", args=[side]))
    assert page.status_code == 200
    listing = html.unescape(client.get(reverse("admin:taskops_queue_changelist")).content.decode())
    assert side in listing
    assert NOT_SET in listing  # in flight is unknown, and the page says why
    assert NOT_SET in html.unescape(page.content.decode())


@pytest.mark.django_db(transaction=True)
def test_a_management_api_that_refuses_is_said_without_its_credentials(live_broker, settings,
                                                                        role_client):
    settings.TASKOPS_RABBITMQ_API = API_URL.replace("guest:guest", "guest:wrong-s3cret")
    send(REPORT, args=["x"], queue="reports")

    reading = broker.queue_depths(["reports"])

    assert reading.in_flight_total is None and reading.queues["reports"].in_flight is None
    assert "answered 401" in reading.in_flight_note
    assert "s3cret" not in reading.in_flight_note
    page = role_client("Operations").get(reverse("admin:taskops_queue_changelist")).content.decode()
    assert "answered 401" in html.unescape(page) and "s3cret" not in page


def state_of(task_id: str) -> str | None:
    return TaskResult.objects.filter(task_id=task_id).values_list("status", flat=True).first()


@pytest.mark.django_db(transaction=True)
def test_the_console_agrees_with_inspect_and_rabbitmqctl_through_enqueue_pause_revoke_and_drain(
        live_broker, start_worker, management_api, actor, role_client):
    queue = unique("cross")
    worker = start_worker(queue, concurrency=1)
    inspect = celery_app().control.inspect(destination=[worker.name], timeout=5)

    def agrees(ready: int, unacked: int, consumers: int, active: int):
        """The console's reading, the broker's own counts and Celery's inspect, all as expected."""
        reading = fresh_reading()
        row, mine = reading.queue(queue), reading.worker(worker.name)
        console = (row.depth, row.in_flight, len(row.consumers), mine.active_count)
        theirs = live_broker.queues().get(queue, (0, 0, 0))
        inspected = len((inspect.active() or {}).get(worker.name, []))
        seen = (console, (*theirs, inspected))
        return seen if console == (*theirs, inspected) == (ready, unacked, consumers, active) else None

    # Enqueue: the worker takes one (prefetch 1, acknowledged late), two wait.
    running = send("demo.tasks.slow_task", args=[120], queue=queue)
    poll_until(lambda: state_of(running.id) == "STARTED", timeout=30, message="the first runs")
    waiting = [send(REPORT, args=[unique("cross")], queue=queue) for _ in range(2)]
    poll_until(lambda: agrees(2, 1, 1, 1), timeout=30, message="after enqueue")
    reading = fresh_reading()  # in flight from the management API, which lists the vhost's queues
    assert reading.in_flight_total == 1 and reading.in_flight_note == ""
    assert not [name for name in broker.queue_depths([]).seen_queues
                if name.endswith(".pidbox") or name.startswith("celeryev")]
    page = html.unescape(role_client("Operations").get(
        reverse("admin:taskops_queue_changelist")).content.decode())
    assert queue in page and NOT_SET not in page
    assert "guest:guest" not in page and management_api not in page

    # Pause: no consumer on the queue any more; the running task goes on.
    assert queue_pause(actor=actor, queue=queue, reason="cross-check").ok
    poll_until(lambda: agrees(2, 1, 0, 1), timeout=30, message="after pause")
    assert fresh_reading().queue(queue).paused

    # Revoke the waiting ones and terminate the running one: nothing in flight, nothing active.
    assert task_revoke(actor=actor, task_ids=[w.id for w in waiting]).ok
    assert task_revoke(actor=actor, task_ids=[running.id], terminate=True, signal="SIGKILL",
                       reason="cross-check").ok
    poll_until(lambda: state_of(running.id) == "REVOKED", timeout=30, message="terminated")
    poll_until(lambda: agrees(2, 0, 0, 0), timeout=30, message="after revoke")

    # Resume: the worker drains the queue, discarding the revoked messages.
    assert queue_resume(actor=actor, queue=queue).ok
    poll_until(lambda: agrees(0, 0, 1, 0), timeout=30, message="after drain")
    poll_until(lambda: all(state_of(w.id) == "REVOKED" for w in waiting), timeout=30,
               message="the revoked messages were discarded, not run")
