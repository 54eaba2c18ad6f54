"""`make test`: run the suite on SQLite, then again on PostgreSQL when a server is reachable.

Extra arguments go to pytest. Set TASKOPS_TEST_POSTGRES_URL to choose the PostgreSQL server
(default postgres://postgres@127.0.0.1:5432/taskops) or to "off" to skip that pass.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
DEFAULT_POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/taskops"


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


def pytest(args: list[str], env: dict[str, str], label: str) -> int:
    print(f"\n===== make test: {label} =====", flush=True)
    code = subprocess.call([sys.executable, "-m", "pytest", *args], cwd=BASE_DIR, env=env)
    return 0 if code == 5 and "-k" in args else code  # 5: a -k filter that selected nothing


def main(argv: list[str]) -> int:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    code = pytest(argv, env, "SQLite")
    pg_url = os.environ.get("TASKOPS_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)
    if pg_url == "off":
        print("PostgreSQL pass skipped (TASKOPS_TEST_POSTGRES_URL=off)")
        return code
    if not postgres_reachable(pg_url):
        print(f"PostgreSQL pass skipped: no server accepts a login at {pg_url.split('@')[-1]}")
        return code
    # The stack test runs `make run`'s SQLite setup; it does not depend on the database server.
    pg_code = pytest([*argv, "-m", "not stack"], {**env, "DATABASE_URL": pg_url}, "PostgreSQL")
    return code or pg_code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
