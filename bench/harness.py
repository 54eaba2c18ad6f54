"""What every bench starts: an embedded Redis on a free port and Django on a throwaway database; an admin login."""

from __future__ import annotations

import os
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlencode, urlsplit, urlunsplit

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

# The machine's PostgreSQL, as `make test` finds it; each bench uses a database of its own there.
POSTGRES_URL = os.environ.get("TASKOPS_BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/")


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


def postgres_database(name: str, *, fresh: bool = False) -> str | None:
    """The DATABASE_URL of database `name` on the bench's PostgreSQL server, created if missing
    (dropped first when `fresh`). None when no server accepts a login.
    """
    try:
        import psycopg
    except ImportError:
        return None
    parts = urlsplit(POSTGRES_URL)
    login = dict(host=parts.hostname or "127.0.0.1", port=parts.port or 5432,
                 user=parts.username or "postgres", password=parts.password or None)
    try:
        with psycopg.connect(**login, dbname="postgres", connect_timeout=2, autocommit=True) as conn:
            if fresh:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
                conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.Error as exc:
        print(f"PostgreSQL at {login['host']}:{login['port']} is not reachable ({exc}).", file=sys.stderr)
        return None
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", "", ""))


def percentile(samples: list[float], q: float) -> float:
    """Nearest-rank percentile, q in 0..1."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def measure(call: Callable[[], object], runs: int, warmup: int = 1) -> list[float]:
    """Milliseconds of `runs` calls, after `warmup` untimed ones (connections, caches)."""
    for _ in range(warmup):
        call()
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        timings.append((time.perf_counter() - started) * 1000)
    return timings


def admin_login(base: str, username: str, password: str, timeout: float = 30.0) -> str:
    """Log in through the admin login form at `base`; return the session's Cookie header."""
    jar = urllib.request.HTTPCookieProcessor()
    opener = urllib.request.build_opener(jar)
    page = f"{base}/admin/login/"
    opener.open(page, timeout=timeout).read()
    csrf = next(c.value for c in jar.cookiejar if c.name == "csrftoken")
    form = {"username": username, "password": password, "csrfmiddlewaretoken": csrf, "next": "/admin/"}
    opener.open(urllib.request.Request(page, data=urlencode(form).encode(), headers={"Referer": page}),
                timeout=timeout).read()
    cookies = {c.name: c.value for c in jar.cookiejar}
    if "sessionid" not in cookies:
        raise RuntimeError(f"login to {base} as {username} failed (no session cookie)")
    return "; ".join(f"{name}={value}" for name, value in cookies.items())
