"""The console's shared cache: many viewers share one reading; a dead cache is skipped, not waited on."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from django.core.cache import cache

T = TypeVar("T")
log = logging.getLogger(__name__)

# The shared reading of the cluster (selectors.live); every action drops it, so pages show its effect.
LIVE_KEY = "taskops:cluster"

# After a failure the cache is skipped this long; then one caller tries it again (for at most
# _PROBE_SECONDS) while the others keep skipping it, so a frozen cache costs one wait, not one each.
_BREAKER_SECONDS = 10.0
_PROBE_SECONDS = 5.0
_state = threading.Lock()
_down_until = 0.0


def _guard(operation: Callable[[], T], default: T) -> T:
    """Run a cache operation; after a failure skip the cache for a while instead of waiting on it."""
    global _down_until
    with _state:
        now = time.monotonic()
        if now < _down_until:
            return default
        if _down_until:  # it was down: this caller tries it; the others skip it meanwhile
            _down_until = now + _PROBE_SECONDS
    try:
        result = operation()
    except Exception as exc:  # any cache backend error: the console works without the cache
        with _state:
            _down_until = time.monotonic() + _BREAKER_SECONDS
        log.warning("cache unavailable for %.0f s (this process shares its readings among its "
                    "own threads meanwhile): %s", _BREAKER_SECONDS, exc)
        return default
    if _down_until:
        with _state:
            _down_until = 0.0
    return result


def _cache_down() -> bool:
    return time.monotonic() < _down_until


@dataclass
class _ProcessValue:
    """The last value this process computed for a key while the shared cache was down."""

    value: Any = None
    known: bool = False
    fresh_until: float = 0.0
    stale_until: float = 0.0
    computing: threading.Lock = field(default_factory=threading.Lock)


_process_values: dict[str, _ProcessValue] = {}


def _process_entry(key: str) -> _ProcessValue:
    with _state:
        return _process_values.setdefault(key, _ProcessValue())


def _remember(entry: _ProcessValue, value: Any, ttl: float) -> Any:
    """Keep `value` as this process's last reading of its key (what viewers get if the cache dies)."""
    now = time.monotonic()
    entry.value, entry.known = value, True
    entry.fresh_until, entry.stale_until = now + ttl, now + max(60, ttl * 10)
    return value


def _process_value(key: str, ttl: float, compute: Callable[[], T], wait: float) -> T:
    """While the shared cache is down: one computation per `ttl` in this process, shared by its threads.

    A viewer arriving while another computes gets the previous value (the last one this
    process saw, kept 10 x ttl) or waits for the new one, as with the shared cache; so a frozen
    cache on a frozen broker costs each process one broker timeout per period, not one per request.
    """
    entry = _process_entry(key)
    if entry.known and time.monotonic() < entry.fresh_until:
        return entry.value
    if not entry.computing.acquire(blocking=False):
        if entry.known and time.monotonic() < entry.stale_until:
            return entry.value
        if entry.computing.acquire(timeout=wait):
            entry.computing.release()
            if entry.known and time.monotonic() < entry.fresh_until:
                return entry.value
        return compute()
    try:
        return _remember(entry, compute(), ttl)
    finally:
        entry.computing.release()


def shared_value(key: str, ttl: float, compute: Callable[[], T], *, wait: float = 3.0) -> T:
    """Return the cached value of `key`, computing it at most once per `ttl` across all processes.

    One caller computes; the others get the previous value (kept 10 x ttl) or wait up to `wait`
    seconds for the new one, so N viewers cost one computation per period, not N. While the
    shared cache is down, each process does the same among its own threads.
    """
    fresh_key, stale_key, lock_key = f"{key}:fresh", f"{key}:stale", f"{key}:lock"
    missing = object()
    entry = _process_entry(key)
    value = _guard(lambda: cache.get(fresh_key, missing), missing)
    if value is not missing:
        return _remember(entry, value, ttl)
    if _cache_down():
        return _process_value(key, ttl, compute, wait)
    if _guard(lambda: cache.add(lock_key, 1, timeout=max(5, int(ttl) + 5)), True):
        try:
            # The lock may be free because another viewer has just stored a new value.
            value = _guard(lambda: cache.get(fresh_key, missing), missing)
            if value is not missing:
                return _remember(entry, value, ttl)
            value = _remember(entry, compute(), ttl)
            _guard(lambda: cache.set(fresh_key, value, timeout=ttl), None)
            _guard(lambda: cache.set(stale_key, value, timeout=max(60, ttl * 10)), None)
            return value
        finally:
            _guard(lambda: cache.delete(lock_key), None)
    stale = _guard(lambda: cache.get(stale_key, missing), missing)
    if stale is not missing:
        return stale
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and not _cache_down():
        time.sleep(0.05)
        value = _guard(lambda: cache.get(fresh_key, missing), missing)
        if value is not missing:
            return _remember(entry, value, ttl)
    return _process_value(key, ttl, compute, wait) if _cache_down() else compute()


def drop(key: str) -> None:
    """Forget the shared value of `key` (after an action changed what it shows)."""
    with _state:
        _process_values.pop(key, None)
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


def process_state_reset() -> None:
    """Forget this process's view of the cache: its breaker and the values kept while it was down (tests)."""
    global _down_until
    with _state:
        _down_until = 0.0
        _process_values.clear()
