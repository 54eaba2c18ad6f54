"""Broker faults for tests: a broker that is gone, or one that accepts connections and never answers."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager

from tests.support.processes import RedisServer

FAILURES = ("stopped", "frozen")


@contextmanager
def broker_failing(server: RedisServer, failure: str) -> Iterator[None]:
    """"stopped": the port is closed for good; "frozen": SIGSTOP until the block ends."""
    pid = server.process.pid
    if failure == "stopped":
        server.stop()
    else:
        os.kill(pid, signal.SIGSTOP)  # accepts connections, answers nothing
    try:
        yield
    finally:
        if failure == "frozen":
            os.kill(pid, signal.SIGCONT)
