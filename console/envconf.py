"""Reading the console's configuration from environment variables."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

TRUE_WORDS = {"1", "true", "yes", "on"}

_ENGINES = {
    "sqlite": "django.db.backends.sqlite3",
    "postgres": "django.db.backends.postgresql",
    "postgresql": "django.db.backends.postgresql",
    "pgsql": "django.db.backends.postgresql",
}


def var_dir_from_env(base_dir: Path) -> Path:
    """TASKOPS_VAR_DIR (default `base_dir`/var): the SQLite file, embedded Redis, worker state, media."""
    return Path(os.environ.get("TASKOPS_VAR_DIR") or base_dir / "var").resolve()


def env_bool(name: str, default: bool) -> bool:
    """Return the boolean value of an environment variable ("1", "true", "yes", "on")."""
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    return value.strip().lower() in TRUE_WORDS


def env_list(name: str, default: list[str]) -> list[str]:
    """Return a comma-separated environment variable as a list of stripped items."""
    value = os.environ.get(name)
    if not value:
        return list(default)
    return [item.strip() for item in value.split(",") if item.strip()]


def env_json(name: str, default):
    """Return a JSON environment variable, or `default` when unset; a bad value names the variable."""
    import json

    from django.core.exceptions import ImproperlyConfigured

    value = os.environ.get(name)
    if not value:
        return default
    try:
        return json.loads(value)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} is not valid JSON ({exc}): {value[:80]!r}") from exc


def redis_url_with_db(url: str, db: int) -> str:
    """The same Redis server as `url` with another database number; "" for a non-Redis URL."""
    if not url.startswith(("redis://", "rediss://")):
        return ""
    base = url.partition("?")[0]
    head, _, _ = base.rpartition("/")
    if head.count("/") >= 2:  # redis://host:port/N
        return f"{head}/{db}"
    return f"{base.rstrip('/')}/{db}"


# The table of the database cache (`manage.py createcachetable` creates it; `make run` does).
CACHE_TABLE = "taskops_cache"


def cache_from_url(url: str) -> dict:
    """The console's shared cache from TASKOPS_CACHE_URL: a Redis URL, or "" / "db" for the database.

    Never one cache per process: every web process, worker and beat must see the same values
    (one cluster reading per period for all viewers; beat's dispatch record seen by the web).
    """
    if url.startswith(("redis://", "rediss://")):
        return {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": url,
            "KEY_PREFIX": "taskops",
            # A paused or dead Redis must not stall a page: fail fast, the console falls back.
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
    if url in ("", "db"):
        # Schedules each keep an entry (beat's last send), so allow many before culling.
        return {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": CACHE_TABLE,
                "KEY_PREFIX": "taskops", "OPTIONS": {"MAX_ENTRIES": 20000}}
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(
        f"TASKOPS_CACHE_URL must be a redis:// or rediss:// URL, or empty (or \"db\") for the "
        f"database cache; got {url.split('://')[0]!r}.")


def database_from_url(url: str, *, base_dir: Path) -> dict:
    """Turn a DATABASE_URL (sqlite:///path or postgres://user:pw@host:port/name) into settings."""
    parts = urlsplit(url)
    scheme = parts.scheme.split("+")[0]
    if scheme not in _ENGINES:
        raise ValueError(
            f"DATABASE_URL scheme {parts.scheme!r} is not supported; use sqlite:/// or postgres://"
        )
    options = dict(parse_qsl(parts.query))
    if scheme == "sqlite":
        raw = unquote(parts.path)
        # sqlite:///relative.db -> "/relative.db" ; sqlite:////abs/path.db -> "//abs/path.db"
        name = raw[1:] if raw.startswith("/") else raw
        path = Path(name)
        if not path.is_absolute():
            path = base_dir / path
        return {
            "ENGINE": _ENGINES[scheme],
            "NAME": str(path),
            # Web, worker and beat share the file: WAL lets readers run beside a writer,
            # IMMEDIATE transactions and a timeout turn lock contention into waiting.
            "OPTIONS": {
                "timeout": 20,
                "transaction_mode": "IMMEDIATE",
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
            "TEST": {"NAME": str(path.with_name(f"test_{path.name}"))},
        }
    config = {
        "ENGINE": _ENGINES[scheme],
        "NAME": unquote(parts.path.lstrip("/")),
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "",
        "PORT": str(parts.port or ""),
        "CONN_MAX_AGE": int(options.pop("conn_max_age", 60)),
        "CONN_HEALTH_CHECKS": True,
        "OPTIONS": {"connect_timeout": int(options.pop("connect_timeout", 2)), **options},
    }
    return config
