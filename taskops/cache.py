"""The console's shared cache: many viewers share one reading; a dead cache is skipped, not waited on."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from django.core.cache import cache

T = TypeVar("T")
log = logging.getLogger(__name__)

# The shared reading of the cluster (selectors.live); every action drops it, so pages show its effect.
LIVE_KEY = "taskops:cluster"

_BREAKER_SECONDS = 10.0
_down_until = 0.0


def _guard(operation: Callable[[], T], default: T) -> T:
    """Run a cache operation; after a failure skip the cache for a while instead of waiting on it."""
    global _down_until
    if time.monotonic() < _down_until:
        return default
    try:
        return operation()
    except Exception as exc:  # any cache backend error: the console works without the cache
        _down_until = time.monotonic() + _BREAKER_SECONDS
        log.warning("cache unavailable for %.0f s: %s", _BREAKER_SECONDS, exc)
        return default


def shared_value(key: str, ttl: float, compute: Callable[[], T], *, wait: float = 3.0) -> T:
    """Return the cached value of `key`, computing it at most once per `ttl` across all processes.

    One caller computes; the others get the previous value (kept 10 x ttl) or wait up to `wait`
    seconds for the new one, so N viewers cost one computation per period, not N.
    """
    fresh_key, stale_key, lock_key = f"{key}:fresh", f"{key}:stale", f"{key}:lock"
    missing = object()
    value = _guard(lambda: cache.get(fresh_key, missing), missing)
    if value is not missing:
        return value
    if _guard(lambda: cache.add(lock_key, 1, timeout=max(5, int(ttl) + 5)), True):
        try:
            value = compute()
            _guard(lambda: cache.set(fresh_key, value, timeout=ttl), None)
            _guard(lambda: cache.set(stale_key, value, timeout=max(60, ttl * 10)), None)
            return value
        finally:
            _guard(lambda: cache.delete(lock_key), None)
    stale = _guard(lambda: cache.get(stale_key, missing), missing)
    if stale is not missing:
        return stale
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        time.sleep(0.05)
        value = _guard(lambda: cache.get(fresh_key, missing), missing)
        if value is not missing:
            return value
    return compute()


def drop(key: str) -> None:
    """Forget the shared value of `key` (after an action changed what it shows)."""
    _guard(lambda: cache.delete_many([f"{key}:fresh", f"{key}:stale"]), None)


def values_get(keys: list[str]) -> dict:
    """The cached values of `keys` that exist, in one round trip ({} when the cache is down)."""
    return _guard(lambda: cache.get_many(keys), {}) if keys else {}


def values_set(values: dict, timeout: float | None) -> None:
    """Store `values` in one round trip (skipped when the cache is down)."""
    _guard(lambda: cache.set_many(values, timeout=timeout), None)


def counter_incr(key: str, timeout: float) -> int | None:
    """Add one to a shared counter that lives `timeout` seconds from its first count; None when the cache is down."""

    def bump() -> int:
        cache.add(key, 0, timeout=timeout)
        return cache.incr(key)

    return _guard(bump, None)
