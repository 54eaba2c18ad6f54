"""Publishing tasks from tests on a fresh connection, and unique names for queues and reports."""

from __future__ import annotations

import uuid

from taskops.conf import celery_app


def send(name: str, *, args=(), kwargs=None, queue: str = "default", **options):
    """Publish a task on a fresh connection (the app's producer pool may hold another broker)."""
    app = celery_app()
    with app.connection_for_write() as conn:
        return app.send_task(name, args=list(args), kwargs=kwargs or {}, queue=queue,
                             connection=conn, **options)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"
