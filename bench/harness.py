"""What every bench starts: an embedded Redis on a free port and Django on a throwaway database."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))


@contextmanager
def bench_stack(*, migrate: bool = False) -> Iterator[object]:
    """Yield a running RedisServer with Django set up against it (DATABASE_URL, if set, is kept)."""
    from tests.support.processes import RedisServer

    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer.start(Path(tmp) / "redis")
        try:
            os.environ.update(
                CELERY_BROKER_URL=server.url,
                DJANGO_SETTINGS_MODULE="console.settings",
                DJANGO_SECRET_KEY="bench",
                TASKOPS_VAR_DIR=tmp,
            )
            os.environ.setdefault("DATABASE_URL", f"sqlite:///{tmp}/bench.sqlite3")
            import django

            django.setup()
            if migrate:
                from django.core.management import call_command

                call_command("migrate", verbosity=0)
            yield server
        finally:
            server.stop()
