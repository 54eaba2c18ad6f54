"""The one module that reads the broker itself: reachability now; queue depths and peeks next."""

from __future__ import annotations

import time
from dataclasses import dataclass

from taskops.connection import BrokerUnavailable, broker_connection

__all__ = ["BrokerStatus", "broker_status"]


@dataclass(frozen=True)
class BrokerStatus:
    """Whether the broker answered, how fast, and what it is (never its URL or credentials)."""

    ok: bool
    transport: str
    latency_ms: float | None
    error: str = ""


def broker_status(*, timeout: float | None = None) -> BrokerStatus:
    """Open a fresh connection and round-trip to the broker within the console's bound."""
    started = time.monotonic()
    transport = ""
    try:
        with broker_connection(timeout=timeout) as conn:
            transport = conn.transport_cls if isinstance(conn.transport_cls, str) else "custom"
            channel = conn.default_channel
            client = getattr(channel, "client", None)
            if client is not None and hasattr(client, "ping"):
                client.ping()  # Redis: a real round trip, not just a TCP handshake
    except BrokerUnavailable as exc:
        return BrokerStatus(ok=False, transport=transport, latency_ms=None, error=str(exc))
    return BrokerStatus(
        ok=True, transport=transport, latency_ms=round((time.monotonic() - started) * 1000, 1)
    )
