"""`make test`: the whole suite on SQLite, then the engine-dependent tests on PostgreSQL when a server answers.

Both passes run in parallel pytest-xdist workers: TASKOPS_TEST_WORKERS of them (default 4:
most of a test's time is spent waiting on workers, brokers and timeouts, not on the CPU, so
even a 2-core machine gains from more workers than cores; 0 runs serially).
The PostgreSQL pass runs the tests marked `db_engine` (raw SQL, indexes, row locks, JSON
lookups) and the `smoke` ones; TASKOPS_TEST_POSTGRES_FULL=1 runs the whole suite there instead.
Each pass prints its wall time, then the total.

Extra arguments go to pytest. Set TASKOPS_TEST_POSTGRES_URL to choose the PostgreSQL server
(default postgres://postgres@127.0.0.1:5432/taskops) or to "off" to skip that pass.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
DEFAULT_POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/taskops"
DEFAULT_WORKERS = "4"
# What the PostgreSQL pass runs (pytest.ini describes both markers and when to use them).
POSTGRES_SELECTION = "db_engine or smoke"


def postgres_reachable(url: str) -> bool:
    """True when a PostgreSQL server accepts a login at `url` (its "postgres" database)."""
    try:
        import psycopg
    except ImportError:
        return False
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    try:
        with psycopg.connect(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 5432,
            user=parts.username or "postgres",
            password=parts.password or None,
            dbname="postgres",
            connect_timeout=2,
        ):
            return True
    except psycopg.Error:
        return False


def parallel_args(argv: list[str]) -> list[str]:
    """xdist options unless the caller chose their own (-n/--numprocesses, -p no:xdist)."""
    if any(a in ("-n", "--numprocesses") or a.startswith(("-n", "--numprocesses=")) for a in argv) \
            or "no:xdist" in argv:
        return []
    workers = os.environ.get("TASKOPS_TEST_WORKERS", DEFAULT_WORKERS)
    return [] if workers in ("", "0") else ["-n", workers, "--dist", "worksteal"]


def with_selection(argv: list[str], selection: str) -> list[str]:
    """`argv` with the marker expression narrowed to `selection` (combined with a caller's -m)."""
    argv = list(argv)
    if "-m" in argv:
        at = argv.index("-m")
        argv[at + 1] = f"({argv[at + 1]}) and ({selection})"
        return argv
    return [*argv, "-m", selection]


def pytest(args: list[str], env: dict[str, str], label: str) -> tuple[int, float]:
    """Run one pass; return its exit code (a filter that selected nothing is no failure) and wall time."""
    print(f"\n===== make test: {label} =====", flush=True)
    started = time.monotonic()
    code = subprocess.call([sys.executable, "-m", "pytest", *args], cwd=BASE_DIR, env=env)
    elapsed = time.monotonic() - started
    print(f"===== make test: {label} pass took {elapsed:.0f} s (exit code {code}) =====", flush=True)
    return (0 if code == 5 and ("-k" in args or "-m" in args) else code), elapsed


def main(argv: list[str]) -> int:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    args = [*parallel_args(argv), *argv]
    started = time.monotonic()
    timings: list[str] = []
    code, elapsed = pytest(args, env, "SQLite")
    timings.append(f"SQLite {elapsed:.0f} s")
    pg_url = os.environ.get("TASKOPS_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)
    pg_code = 0
    if pg_url == "off":
        print("PostgreSQL pass skipped (TASKOPS_TEST_POSTGRES_URL=off)")
    elif not postgres_reachable(pg_url):
        print(f"PostgreSQL pass skipped: no server accepts a login at {pg_url.split('@')[-1]}")
    else:
        # The stack test runs `make run`'s SQLite setup; it does not depend on the database server.
        selection = "not stack" if os.environ.get("TASKOPS_TEST_POSTGRES_FULL") == "1" \
            else f"({POSTGRES_SELECTION}) and not stack"
        pg_code, elapsed = pytest(with_selection(args, selection), {**env, "DATABASE_URL": pg_url},
                                  f"PostgreSQL ({selection})")
        timings.append(f"PostgreSQL {elapsed:.0f} s")
    print(f"\n===== make test: {', '.join(timings)}; total {time.monotonic() - started:.0f} s =====",
          flush=True)
    return code or pg_code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
