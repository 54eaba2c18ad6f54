"""The statement timeout of web requests on PostgreSQL: set for one request, and recognised when it fires."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import DatabaseError
from django.db.backends.base.base import BaseDatabaseWrapper

log = logging.getLogger(__name__)

QUERY_CANCELED = "57014"  # PostgreSQL's SQLSTATE for a statement stopped by statement_timeout


@contextmanager
def statement_timeout(connection: BaseDatabaseWrapper, milliseconds: int) -> Iterator[None]:
    """Each statement on `connection` may run `milliseconds` inside the block (PostgreSQL; elsewhere nothing).

    The session's own value (server, role or database default) is back after the block.
    """
    if connection.vendor != "postgresql" or milliseconds <= 0:
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('statement_timeout', %s, false)", [f"{int(milliseconds)}ms"])
    try:
        yield
    finally:
        try:
            with connection.cursor() as cursor:
                cursor.execute("RESET statement_timeout")
        except DatabaseError:  # a broken connection: Django replaces it; the next request sets its own
            log.debug("could not reset statement_timeout", exc_info=True)


def is_statement_timeout(exc: BaseException) -> bool:
    """True when `exc` is (or was caused by) PostgreSQL stopping a statement that ran too long."""
    while exc is not None:
        if getattr(exc, "sqlstate", None) == QUERY_CANCELED or getattr(exc, "pgcode", None) == QUERY_CANCELED:
            return True
        exc = exc.__cause__
    return False
