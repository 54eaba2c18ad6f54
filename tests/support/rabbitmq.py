"""A real RabbitMQ for tests: a fresh virtual host per test, and the broker's own queue counts."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

import pytest
from kombu import Connection

AMQP_URL = os.environ.get("TASKOPS_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")
# RabbitMQ's management API (the console reads unacknowledged counts there; tests make vhosts).
API_URL = os.environ.get("TASKOPS_TEST_RABBITMQ_API", "http://guest:guest@127.0.0.1:15672/")
# CI sets it: a RabbitMQ that does not answer is then a failure, not a skip.
REQUIRED = os.environ.get("TASKOPS_TEST_AMQP_REQUIRED") == "1"


def unavailable(reason: str) -> None:
    """Skip the test (fail it where CI requires RabbitMQ) because RabbitMQ is not there."""
    if REQUIRED:
        pytest.fail(f"RabbitMQ is required here (TASKOPS_TEST_AMQP_REQUIRED=1): {reason}")
    pytest.skip(reason)


def amqp_answers(url: str = AMQP_URL) -> str:
    """"" when a RabbitMQ accepts a connection at `url`, else why not."""
    try:
        with Connection(url, connect_timeout=1) as conn:
            conn.ensure_connection(max_retries=0)
    except Exception as exc:  # noqa: BLE001 - any failure means there is no RabbitMQ to test
        return f"no RabbitMQ answers at {url.split('@')[-1]}: {exc}"
    return ""


def api(method: str, path: str, body: dict | None = None, *, timeout: float = 5) -> object:
    """One call to RabbitMQ's management API; raises OSError (URLError) when it does not answer."""
    parts = urlsplit(API_URL)
    token = base64.b64encode(f"{parts.username}:{parts.password}".encode()).decode()
    request = urllib.request.Request(
        f"{parts.scheme}://{parts.hostname}:{parts.port}{path}", method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Basic {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        text = response.read()
    return json.loads(text) if text else None


@dataclass
class RabbitVhost:
    """A virtual host of its own on the test RabbitMQ: its queues, workers and pidbox are the test's."""

    name: str

    @property
    def url(self) -> str:
        parts = urlsplit(AMQP_URL)
        return f"amqp://{parts.netloc}/{quote(self.name, safe='')}"

    @classmethod
    def create(cls) -> RabbitVhost:
        """A new vhost the test user may use; skips (fails in CI) when RabbitMQ or its API is missing."""
        if reason := amqp_answers():
            unavailable(reason)
        vhost = cls(f"taskops-test-{uuid.uuid4().hex[:10]}")
        user = urlsplit(AMQP_URL).username or "guest"
        try:
            api("PUT", f"/api/vhosts/{quote(vhost.name, safe='')}")
            api("PUT", f"/api/permissions/{quote(vhost.name, safe='')}/{quote(user, safe='')}",
                {"configure": ".*", "write": ".*", "read": ".*"})
        except OSError as exc:
            unavailable(f"RabbitMQ's management API does not answer at {API_URL.split('@')[-1]} "
                        f"(rabbitmq-plugins enable rabbitmq_management): {exc}")
        return vhost

    def delete(self) -> None:
        try:
            api("DELETE", f"/api/vhosts/{quote(self.name, safe='')}")
        except OSError:
            pass  # a vhost left behind holds nothing another test sees

    def queues(self) -> dict[str, tuple[int, int, int]]:
        """The broker's own count per queue, from `rabbitmqctl list_queues` (not the console's reader):
        {name: (ready, unacknowledged, consumers)}."""
        out = subprocess.run(
            ["rabbitmqctl", "list_queues", "-q", "--no-table-headers", "-p", self.name,
             "name", "messages_ready", "messages_unacknowledged", "consumers"],
            capture_output=True, text=True, timeout=30, check=True).stdout
        counts = {}
        for line in out.splitlines():
            name, ready, unacked, consumers = line.split("\t")
            counts[name] = (int(ready), int(unacked), int(consumers))
        return counts


def on_both_brokers(*, db_engine: bool = False):
    """Run a live test on Redis and on RabbitMQ (through the `live_broker` fixture).

    The RabbitMQ run is marked `amqp`; `db_engine` marks the Redis run only, so the PostgreSQL
    pass does not run the test a second time on RabbitMQ.
    """
    redis_marks = [pytest.mark.db_engine] if db_engine else []
    return pytest.mark.parametrize("live_broker", [
        pytest.param("redis", marks=redis_marks),
        pytest.param("amqp", marks=pytest.mark.amqp),
    ], indirect=True)
