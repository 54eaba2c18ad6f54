"""Publishing tasks from tests on a fresh connection, and unique names for queues and reports."""

from __future__ import annotations

import uuid

from taskops.conf import celery_app


def point_app_at(broker_url: str) -> str:
    """Point the console's Celery app at `broker_url`; return the previous URL.

    Celery caches its connection pool and producer pool (bound to the old broker) on the app;
    they are dropped so that nothing keeps talking to a broker a test has stopped.
    """
    app = celery_app()
    previous = app.conf.broker_url
    app.conf.broker_url = broker_url
    app._pool = None
    app.amqp._producer_pool = None
    return previous


def send(name: str, *, args=(), kwargs=None, queue: str = "default", **options):
    """Publish a task on a fresh connection (the app's producer pool may hold another broker)."""
    app = celery_app()
    with app.connection_for_write() as conn:
        return app.send_task(name, args=list(args), kwargs=kwargs or {}, queue=queue,
                             connection=conn, **options)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def waiting(queue: str) -> int:
    """Messages waiting in `queue` now, every priority level (read through the console's broker reader)."""
    from taskops import broker

    return broker.queue_depths([queue], discover=False).queues[queue].depth


def captured_meta(task: str, *, args=(), kwargs=None, routing_key: str = "", priority: int = 0) -> str:
    """A TaskResult.meta holding a captured call as the worker hook stores it (taskops.capture)."""
    from kombu.utils.json import dumps

    from taskops.capture import CALL_KEY, CAPTURE_VERSION

    return dumps({"children": [], CALL_KEY: {
        "v": CAPTURE_VERSION, "task": task, "args": list(args), "kwargs": dict(kwargs or {}),
        "exchange": "", "routing_key": routing_key, "priority": priority, "time_limit": None,
        "soft_time_limit": None, "headers": {}}})
