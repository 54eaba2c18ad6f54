"""Celery signal receivers in worker processes: paused queues and kept revokes apply at start."""

from __future__ import annotations

import logging

from celery.signals import celeryd_after_setup, worker_shutdown
from celery.worker import state
from django.db import connections

from taskops.services import worker_came_online, worker_went_offline

log = logging.getLogger(__name__)


@celeryd_after_setup.connect
def worker_apply_console_state(sender, instance, **kwargs) -> None:
    """Before the worker consumes anything: skip paused queues, know every kept revoke."""
    queues = instance.app.amqp.queues
    consuming = sorted(queues.consume_from)
    try:
        plan = worker_came_online(name=instance.hostname, queues=consuming)
    except Exception:  # the database may be down: the worker must still start
        log.exception("TaskOps: could not read paused queues and revokes; starting without them")
        return
    finally:
        connections.close_all()  # do not hand an open connection to forked pool processes
    if plan.hold_queues:
        queues.deselect(list(plan.hold_queues))
        log.warning("TaskOps: not consuming paused queues %s", ", ".join(plan.hold_queues))
    for task_id in plan.revoked_ids:
        state.revoked.add(task_id)
    if plan.revoked_ids:
        log.info("TaskOps: %d kept revokes applied", len(plan.revoked_ids))


@worker_shutdown.connect
def worker_record_shutdown(sender, **kwargs) -> None:
    """Mark the worker offline so the console shows it as such instead of "not answering"."""
    try:
        worker_went_offline(name=sender.hostname)
    except Exception:
        log.exception("TaskOps: could not record the worker's shutdown")
    finally:
        connections.close_all()
