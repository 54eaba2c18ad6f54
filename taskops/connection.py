"""Short-timeout broker connections for the console's own calls, and the one broker error."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager

import kombu.exceptions
import redis
from kombu import Connection

from taskops.conf import celery_app, config


class BrokerUnavailable(Exception):
    """The broker did not answer within the console's bound (down, paused or unreachable)."""


# What a dead, paused or unreachable broker raises through kombu and the Redis client.
BROKER_ERRORS: tuple[type[BaseException], ...] = (
    kombu.exceptions.OperationalError,
    redis.RedisError,
    OSError,
    socket.timeout,
    ConnectionError,
)


def _transport_options(timeout: float) -> dict:
    """Transport options that bound every socket operation (the workers' config stays as is)."""
    return {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "max_retries": 1,
        # Redis: wait for replies in 0.1 s steps instead of kombu's 1 s, so a broadcast with a
        # 0.6 s timeout really takes 0.6 s (and one whose repliers all answered returns at once).
        "polling_interval": 0.1,
        "interval_start": 0,
        "interval_step": 0,
        "interval_max": 0,
    }


@contextmanager
def broker_connection(*, timeout: float | None = None) -> Iterator[Connection]:
    """Yield a fresh, connected broker connection whose operations give up after `timeout`.

    Any broker failure inside the block is raised as BrokerUnavailable.
    """
    timeout = config.broker_timeout if timeout is None else timeout
    app = celery_app()
    conn = app.connection_for_write(
        connect_timeout=timeout, transport_options=_transport_options(timeout)
    )
    try:
        try:
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=timeout)
        except BROKER_ERRORS as exc:
            raise BrokerUnavailable(f"broker unreachable: {exc}") from exc
        try:
            yield conn
        except BROKER_ERRORS as exc:
            raise BrokerUnavailable(f"broker error: {exc}") from exc
    finally:
        try:
            conn.release()
        except BROKER_ERRORS:
            pass
