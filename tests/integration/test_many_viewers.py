"""20 viewers refreshing the dashboard while the broker and the shared cache on it are frozen: each answered within the promise, one reading per period."""

from __future__ import annotations

import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.core.cache import caches
from django.test import override_settings

from taskops import broker
from tests.support.faults import broker_failing

pytestmark = pytest.mark.django_db(transaction=True)

VIEWERS = 20
ROUNDS = 4  # each viewer refreshes every 2 s: 80 requests over about 8 s
REFRESH_SECONDS = 2.0
# A reading is fresh for 2 s (TASKOPS_LIVE_TTL); the next one waits 0.5 s on the frozen cache and
# 1.5 s on the frozen broker while viewers get the last one: every page begun later has the banner.
FIRST_READING_SECONDS = 4.5


def _redis_cache_on(server_url: str) -> dict:
    """The deployment's cache: database 1 of the broker's Redis, with its short timeouts."""
    return {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                        "LOCATION": server_url.rsplit("/", 1)[0] + "/1", "KEY_PREFIX": "taskops",
                        "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5}}}


def test_twenty_viewers_get_the_dashboard_with_a_banner_in_time_while_the_broker_is_frozen(
    live_server, isolated_broker, role_client, monkeypatch
):
    readings = []
    real_depths = broker.queue_depths

    def counted_depths(*args, **kwargs):
        readings.append(time.monotonic())
        return real_depths(*args, **kwargs)

    monkeypatch.setattr(broker, "queue_depths", counted_depths)
    client = role_client("Operations")
    cookie = "; ".join(f"{name}={morsel.value}" for name, morsel in client.cookies.items())

    def view(viewer: int) -> list[tuple[float, float, int, bool]]:
        seen = []
        start = time.monotonic() + viewer * REFRESH_SECONDS / VIEWERS  # viewers spread over 2 s
        for round_ in range(ROUNDS):
            time.sleep(max(0.0, start + round_ * REFRESH_SECONDS - time.monotonic()))
            request = urllib.request.Request(f"{live_server.url}/admin/",
                                             headers={"Cookie": cookie, "X-TaskOps-Live": "1"})
            began = time.monotonic()
            with urllib.request.urlopen(request, timeout=30) as response:
                body = response.read().decode()
                seen.append((began - frozen_at, time.monotonic() - began, response.status,
                             "The broker is not answering" in body))
        return seen

    with override_settings(CACHES=_redis_cache_on(isolated_broker.url)):
        caches["default"].clear()
        assert client.get("/admin/").status_code == 200  # they were watching before it froze
        readings.clear()
        with broker_failing(isolated_broker, "frozen"):
            frozen_at = began = time.monotonic()
            with ThreadPoolExecutor(max_workers=VIEWERS) as pool:
                results = [r for viewer in pool.map(view, range(VIEWERS)) for r in viewer]
            duration = time.monotonic() - began

    durations = sorted(seconds for _, seconds, _, _ in results)
    p95 = durations[int(len(durations) * 0.95) - 1]
    assert len(results) == VIEWERS * ROUNDS
    assert {status for _, _, status, _ in results} == {200}
    late = [banner for began, _, _, banner in results if began > FIRST_READING_SECONDS]
    assert late and all(late), f"{late.count(False)} of {len(late)} later pages had no banner"
    assert p95 < 3.0, f"p95 {p95:.2f} s (slowest {durations[-1]:.2f} s) for {VIEWERS} viewers"
    # All viewers share one reading per period (2 s): not one broker wait per request.
    assert len(readings) <= duration / 2.0 + 3, (
        f"{len(readings)} broker readings for {len(results)} requests in {duration:.1f} s")
