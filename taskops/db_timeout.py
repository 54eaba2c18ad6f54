"""Bounded database waits for web requests: statement and lock timeouts set for one request, recognised when they fire, remembered for a banner."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from django.db import DatabaseError
from django.db.backends.base.base import BaseDatabaseWrapper

log = logging.getLogger(__name__)

QUERY_CANCELED = "57014"  # PostgreSQL's SQLSTATE for a statement stopped by statement_timeout
LOCK_NOT_AVAILABLE = "55P03"  # PostgreSQL's SQLSTATE for a lock not granted within lock_timeout
SQLITE_BUSY = ("database is locked", "database table is locked")  # SQLite's busy timeout passed
# A statement of a web request that runs this long shows the banner too ("the database is slow").
SLOW_STATEMENT_SECONDS = 1.0
# How long pages show the banner after the last trouble this web process met.
TROUBLE_SHOWN_SECONDS = 60.0
SQLITE_DEFAULT_TIMEOUT = 5.0  # Python's sqlite3 module waits this long unless OPTIONS say otherwise


@dataclass(frozen=True)
class DatabaseTrouble:
    """What the last slow or refused statement of a web request met, and when."""

    kind: str  # "locked" (a lock not granted in time), "stopped" (statement timeout), "slow"
    seconds: float  # how long the statement waited or ran
    at: float  # time.time()

    @property
    def words(self) -> str:
        if self.kind == "locked":
            return f"another process held a lock the console needed for more than {self.seconds:.1f} s"
        if self.kind == "stopped":
            return f"a query ran past the statement timeout ({self.seconds:.1f} s) and was stopped"
        return f"a query took {self.seconds:.1f} s"


_noted = threading.Lock()
_last_trouble: DatabaseTrouble | None = None


def _note(kind: str, seconds: float) -> None:
    global _last_trouble
    with _noted:
        _last_trouble = DatabaseTrouble(kind=kind, seconds=seconds, at=time.time())
    log.warning("database %s: %.1f s in a web request", kind, seconds)


def recent_trouble(now: float | None = None) -> DatabaseTrouble | None:
    """The last database trouble this web process met, if it is under TROUBLE_SHOWN_SECONDS old."""
    trouble = _last_trouble
    now = time.time() if now is None else now
    return trouble if trouble and now - trouble.at < TROUBLE_SHOWN_SECONDS else None


def trouble_forget() -> None:
    """Forget the last trouble (tests; a process starting afresh)."""
    global _last_trouble
    with _noted:
        _last_trouble = None


def trouble_kind(exc: BaseException | None) -> str | None:
    """"stopped" (statement timeout), "locked" (lock or busy timeout), or None for other errors.

    `exc` may be the error itself or one raised because of it (Django wraps the driver's error;
    the session middleware turns a failed save into SessionInterrupted).
    """
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        code = getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)
        if code == QUERY_CANCELED:
            return "stopped"
        if code == LOCK_NOT_AVAILABLE or any(words in str(exc) for words in SQLITE_BUSY):
            return "locked"
        exc = exc.__cause__ or exc.__context__
    return None


class _RequestBounds:
    """The bounds of one web request's statements, set when first needed, and a watch on each statement."""

    def __init__(self, connection: BaseDatabaseWrapper, statement_ms: int, lock_ms: int) -> None:
        self.connection, self.statement_ms, self.lock_ms = connection, statement_ms, lock_ms
        self.names: list[str] = []
        self.applied = False

    def apply(self) -> None:
        """Set the bounds (once). PostgreSQL: `statement_timeout`, `lock_timeout`; SQLite: the busy timeout."""
        if self.applied:
            return
        self.applied = True  # the statements below pass through __call__ too
        vendor, statement_ms, lock_ms = self.connection.vendor, self.statement_ms, self.lock_ms
        values = ({"busy_timeout": lock_ms} if vendor == "sqlite" and lock_ms > 0 else
                  {name: ms for name, ms in (("statement_timeout", statement_ms),
                                             ("lock_timeout", lock_ms)) if ms > 0}
                  if vendor == "postgresql" else {})
        if not values:
            return
        with self.connection.cursor() as cursor:
            if vendor == "sqlite":
                cursor.execute(f"PRAGMA busy_timeout = {int(lock_ms)}")
            else:
                cursor.execute("SELECT " + ", ".join("set_config(%s, %s, false)" for _ in values),
                               [part for name, ms in values.items() for part in (name, f"{int(ms)}ms")])
        self.names = list(values)

    def reset(self) -> None:
        """Give the connection its own values back (PostgreSQL: RESET; SQLite: its OPTIONS timeout)."""
        if not self.names:
            return
        try:
            with self.connection.cursor() as cursor:
                for name in self.names:
                    if name == "busy_timeout":
                        options = self.connection.settings_dict.get("OPTIONS", {})
                        seconds = float(options.get("timeout", SQLITE_DEFAULT_TIMEOUT))
                        cursor.execute(f"PRAGMA busy_timeout = {int(seconds * 1000)}")
                    else:
                        cursor.execute(f"RESET {name}")
        except DatabaseError:  # a broken connection: Django replaces it; the next request sets its own
            log.debug("could not reset the request's database bounds", exc_info=True)

    def __call__(self, execute, sql, params, many, context):
        """Time each statement; remember a slow one and one a bound stopped."""
        self.apply()
        started = time.monotonic()
        try:
            result = execute(sql, params, many, context)
        except DatabaseError as exc:
            kind = trouble_kind(exc)
            if kind:
                _note(kind, time.monotonic() - started)
            raise
        elapsed = time.monotonic() - started
        if elapsed >= SLOW_STATEMENT_SECONDS:
            _note("slow", elapsed)
        return result


@contextmanager
def request_bounds(connection: BaseDatabaseWrapper, *, statement_ms: int, lock_ms: int) -> Iterator[None]:
    """Bound each statement on `connection` inside the block, and watch for slow ones.

    PostgreSQL: `statement_timeout` (a statement running longer is stopped) and `lock_timeout`
    (a lock not granted in time fails the statement), set before the request's first statement
    (a setting made inside a transaction that rolls back would be undone). SQLite: the busy
    timeout (how long a write waits for another process's lock), set by the request's first
    statement, so a request that reads nothing opens no database. A value of 0 leaves that bound
    alone. The connection's own values (server, role or database defaults; the SQLite OPTIONS
    timeout) are back after.
    """
    bounds = _RequestBounds(connection, statement_ms, lock_ms)
    with connection.execute_wrapper(bounds):
        if connection.vendor == "postgresql":
            bounds.apply()
        try:
            yield
        finally:
            bounds.reset()
