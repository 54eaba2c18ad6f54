"""Celery signal receivers in worker processes: paused queues and kept revokes apply at start; a worker says when it stops."""

from __future__ import annotations

import atexit
import logging
import os
import threading
from collections.abc import Callable

from celery.signals import celeryd_after_setup, worker_ready, worker_shutdown, worker_shutting_down
from celery.worker import state
from django.db import connections

from taskops.services import (
    worker_became_ready,
    worker_came_online,
    worker_stopping,
    worker_went_offline,
)

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
    _goodbye_at_exit(instance.hostname)
    if plan.hold_queues:
        queues.deselect(list(plan.hold_queues))
        log.warning("TaskOps: not consuming paused queues %s", ", ".join(plan.hold_queues))
    for task_id in plan.revoked_ids:
        state.revoked.add(task_id)
    if plan.revoked_ids:
        log.info("TaskOps: %d kept revokes applied", len(plan.revoked_ids))


def _record(what: str, write: Callable[[], None]) -> None:
    """Write one of the worker's own records: a database that does not answer never stops it."""
    try:
        write()
    except Exception:
        log.exception("TaskOps: could not record %s", what)
    finally:
        connections.close_all()


@worker_ready.connect
def worker_record_ready(sender, **kwargs) -> None:
    """The worker consumes now, and answers the console: from here on, silence is not a start."""
    _record("that the worker is ready", lambda: worker_became_ready(name=sender.hostname))


@worker_shutting_down.connect
def worker_record_stopping(sender, **kwargs) -> None:
    """Ctrl-C (or SIGTERM): the worker finishes its running tasks and answers nobody meanwhile.

    Celery calls this inside its signal handler, where the main thread may be in the middle of
    a database call of its own: the record is written by a thread with its own connection.
    """
    name = str(sender)
    threading.Thread(target=_record, name="taskops-stopping", args=(
        "the worker's warm shutdown", lambda: worker_stopping(name=name))).start()


@worker_shutdown.connect
def worker_record_shutdown(sender, **kwargs) -> None:
    """Mark the worker offline (it said goodbye) so the console shows it as such at once."""
    _goodbye(sender.hostname)


def _goodbye(name: str) -> None:
    _record("the worker's shutdown", lambda: worker_went_offline(name=name))


def _goodbye_at_exit(name: str) -> None:
    """A cold shutdown (a second Ctrl-C, SIGQUIT) sends no worker_shutdown: say goodbye as the
    worker's main process exits (not its pool processes, which inherit this)."""
    main = os.getpid()
    atexit.register(lambda: os.getpid() == main and _goodbye(name))
