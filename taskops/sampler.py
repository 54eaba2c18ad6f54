"""A sampler thread inside beat (one per deployment): queue depth history, workers seen, beat health."""

from __future__ import annotations

import logging
import threading
import time

from celery.signals import beat_init
from django.db import close_old_connections

from taskops.conf import config
from taskops.connection import BrokerUnavailable
from taskops.selectors import configured_queue_names
from taskops.selectors.beat_health import beat_health_publish, beat_health_publish_period
from taskops.services import cluster_sample

log = logging.getLogger(__name__)


def sampler_loop(stop: threading.Event, interval: float) -> None:
    """Every `interval` seconds record queue depths and who is online; publish beat's health as
    often as it stays cheap (see beat_health_publish_period)."""
    health_due = 0.0
    while not stop.is_set():
        close_old_connections()
        try:
            cluster_sample(queue_names=configured_queue_names())
        except BrokerUnavailable as exc:
            log.warning("TaskOps sampler: broker unavailable: %s", exc)
        except Exception:
            log.exception("TaskOps sampler: sample failed")
        try:
            if time.monotonic() >= health_due:
                beat_health_publish()
                health_due = time.monotonic() + beat_health_publish_period() - interval / 2
        except Exception:
            log.exception("TaskOps sampler: beat health failed")
        finally:
            close_old_connections()
        stop.wait(interval)


@beat_init.connect
def sampler_start(sender=None, **kwargs) -> None:
    """Start the sampler when beat starts (TASKOPS_SAMPLE_INTERVAL=0 turns it off)."""
    interval = config.sample_interval
    if interval <= 0:
        return
    thread = threading.Thread(
        target=sampler_loop, args=(threading.Event(), interval), name="taskops-sampler", daemon=True
    )
    thread.start()
    log.info("TaskOps sampler started (every %.0f s)", interval)
