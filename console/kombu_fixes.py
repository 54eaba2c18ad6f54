"""A guard for kombu 5.7.0's Redis transport: a worker whose Redis dies just after it received a task keeps running."""

from __future__ import annotations

import logging

from kombu.transport import redis as kombu_redis

log = logging.getLogger(__name__)

_restore_unacked = kombu_redis.QoS.restore_unacked


def restore_unacked_unless_closed(self, client=None):
    """Give received messages back to Redis, unless the connection to it is closed already.

    When Redis goes away just after a worker received a message, Celery closes the broken
    connection (`Connection.collect`, then `close`); the second close reaches this restore
    after the transport lost its client, and kombu 5.7.0 fails with AttributeError
    (`'NoneType' object has no attribute 'hostname'`), which ends the worker. The messages are
    still in Redis's unacked hash (if Redis kept them), which gives them back after
    `visibility_timeout`, as it does for a worker killed outright.
    """
    transport = self.channel.connection
    if client is None and (transport is None or transport.client is None):
        log.warning("The broker connection is closed: %d received message(s) stay in the broker's "
                    "unacked hash until its visibility timeout gives them back.", len(self._delivered))
        self._delivered.clear()
        return None
    return _restore_unacked(self, client)


def install() -> None:
    """Put the guard in place (once; the web, workers and beat all load the Celery app)."""
    kombu_redis.QoS.restore_unacked = restore_unacked_unless_closed
