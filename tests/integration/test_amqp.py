"""The broker reader against a real RabbitMQ (when one answers at TASKOPS_TEST_AMQP_URL)."""

from __future__ import annotations

import html
import os

import pytest
from kombu import Connection

from taskops import broker
from taskops.conf import celery_app
from tests.support.tasks import point_app_at, send, unique

AMQP_URL = os.environ.get("TASKOPS_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")


@pytest.fixture
def rabbitmq():
    try:
        with Connection(AMQP_URL, connect_timeout=1) as conn:
            conn.ensure_connection(max_retries=0)
    except Exception as exc:  # noqa: BLE001 - any failure means there is no RabbitMQ to test
        pytest.skip(f"no RabbitMQ answers at {AMQP_URL.split('@')[-1]}: {exc}")
    original = point_app_at(AMQP_URL)
    yield
    point_app_at(original)


def test_depths_of_existing_and_missing_queues_and_purge(rabbitmq):
    queue, missing = unique("amqp"), unique("missing")
    for priority in (0, 9, 9):
        send("demo.tasks.generate_report", args=["amqp"], queue=queue, priority=priority)

    reading = broker.queue_depths([queue, missing])

    assert reading.transport == "amqp"
    assert (reading.queues[queue].depth, reading.queues[queue].consumers) == (3, 0)
    assert reading.queues[missing].exists is False
    assert broker.queue_peek(queue) == []  # RabbitMQ cannot be read without taking messages
    assert broker.queue_purge(queue) == 3
    assert broker.queue_depths([queue]).queues[queue].depth == 0
    with celery_app().connection_for_write() as conn:
        conn.default_channel.queue_delete(queue)


@pytest.mark.django_db(transaction=True)
def test_purging_a_queue_rabbitmq_does_not_have_is_a_message_not_a_500(rabbitmq, role_client):
    from django.urls import reverse

    from taskops.models import AuditEntry

    missing = "emails"  # configured, so the console knows it, but never declared on this vhost
    with celery_app().connection_for_write() as conn:
        conn.default_channel.queue_delete(missing)
    with pytest.raises(broker.QueueNotPurgeable, match="no queue"):
        broker.queue_purge(missing)

    client = role_client("Operations")
    response = client.post(reverse("admin:taskops_queue_purge", args=[missing]),
                           {"confirm": missing, "reason": "cleanup"}, follow=True)

    assert response.status_code == 200
    assert f"there is no queue '{missing}' in the broker" in html.unescape(response.content.decode())
    entry = AuditEntry.objects.get(action="queue.purge")
    assert entry.outcome == "refused"
