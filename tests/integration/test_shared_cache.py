"""The shared cache on a real Redis or the database: 50 concurrent viewers cost one computation; a dead or frozen cache costs one wait."""

from __future__ import annotations

import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.core.cache import caches
from django.core.management import call_command
from django.test import override_settings

from console.envconf import cache_from_url
from taskops import cache as shared
from tests.support.processes import free_port


def _redis_cache(url: str) -> dict:
    return {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": url,
                        "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5}}}


@pytest.fixture(params=["redis", "database"])
def shared_cache(request, redis_url):
    """The deployment's shared cache: Redis, or the database (a RabbitMQ broker's)."""
    if request.param == "redis":
        backend = _redis_cache(redis_url.rsplit("/", 1)[0] + "/3")
    else:  # the test is transactional: every viewer thread's own connection sees the table
        backend = {"default": cache_from_url("db")}
    with override_settings(CACHES=backend):
        if request.param == "database":
            call_command("createcachetable", verbosity=0)
        caches["default"].clear()
        yield caches["default"]
        caches["default"].clear()


@pytest.mark.django_db(transaction=True)
def test_fifty_concurrent_viewers_cost_one_computation(shared_cache, monkeypatch):
    calls, tries = [], []
    lock = threading.Lock()
    everyone_tried = threading.Event()
    backend = type(shared_cache)
    real_add = backend.add

    def counting_add(self, *args, **kwargs):
        with lock:
            tries.append(1)
            if len(tries) == 50:
                everyone_tried.set()
        return real_add(self, *args, **kwargs)

    monkeypatch.setattr(backend, "add", counting_add)

    def expensive() -> str:
        with lock:
            calls.append(1)
        # Hold the computation until all 50 viewers have asked for the lock meanwhile.
        assert everyone_tried.wait(timeout=10), f"only {len(tries)} viewers arrived"
        return "reading"

    with ThreadPoolExecutor(max_workers=50) as pool:
        values = list(pool.map(lambda _: shared.shared_value("bench:key", 2, expensive), range(50)))

    assert values == ["reading"] * 50
    assert len(calls) == 1


def test_a_dead_cache_is_skipped_without_waiting(monkeypatch):
    monkeypatch.setattr(shared, "_down_until", 0.0)
    with override_settings(CACHES=_redis_cache(f"redis://127.0.0.1:{free_port()}/0")):
        started = time.monotonic()
        values = [shared.shared_value("k", 2, lambda: "computed") for _ in range(20)]
        elapsed = time.monotonic() - started

    assert values == ["computed"] * 20
    assert elapsed < 1.5, f"20 reads with a dead cache took {elapsed:.2f} s"


def test_a_frozen_cache_costs_one_wait_not_one_per_viewer(monkeypatch):
    # A listening socket nobody accepts on: connections open, no answer ever comes (a frozen Redis).
    frozen = socket.socket()
    frozen.bind(("127.0.0.1", 0))
    frozen.listen(64)
    computed = []

    def view() -> float:
        began = time.monotonic()
        shared.shared_value("k", 2, lambda: computed.append(1) or "computed")
        return time.monotonic() - began

    try:
        with override_settings(CACHES=_redis_cache(f"redis://127.0.0.1:{frozen.getsockname()[1]}/0")):
            assert view() >= 0.4  # the first viewer waits the cache's timeout, and opens the breaker
            # The breaker's time is over: one viewer tries the cache again, the others do not wait.
            monkeypatch.setattr(shared, "_down_until", time.monotonic())
            with ThreadPoolExecutor(max_workers=10) as pool:
                waits = list(pool.map(lambda _: view(), range(10)))
    finally:
        frozen.close()

    assert sum(1 for wait in waits if wait > 0.3) <= 1, waits
    # Meanwhile this process computes once per period for all its viewers.
    assert len(computed) == 1
