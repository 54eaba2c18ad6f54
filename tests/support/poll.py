"""poll_until: wait for a condition by checking it repeatedly, never by a fixed sleep."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def poll_until(
    check: Callable[[], T], *, timeout: float = 15.0, interval: float = 0.1, message: str = ""
) -> T:
    """Return the first truthy value of `check()`; fail with `message` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while True:
        last = check()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"gave up after {timeout:.1f} s: {message or check!r} (last value: {last!r})"
            )
        time.sleep(interval)
