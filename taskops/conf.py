"""The console's one settings object (every TASKOPS_* setting with its one default) and its Celery app."""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Callable, Generic, TypeVar

from celery import Celery, current_app
from django.conf import settings as django_settings
from django.utils.module_loading import import_string

T = TypeVar("T")

# The console's pages load scripts, styles, images and fonts from their own origin only; the one
# inline <style> left is Django's own in admin/change_list.html (lists without actions), by hash.
CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self' 'sha256-blvLUW3UscWqsXGByNOqdBboM+ShWAuugp2mC/wbafU='",
    "img-src 'self'",
    "font-src 'self'",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
])


class _Setting(Generic[T]):
    """One TASKOPS_<NAME> setting: read from Django's settings at each access, else its default."""

    def __init__(self, default: T, cast: Callable[[Any], T] | None = None) -> None:
        self.default = default
        self.cast = cast
        self.key = ""

    def __set_name__(self, owner, name: str) -> None:
        self.key = "TASKOPS_" + name.upper()

    def __get__(self, instance, owner=None) -> T:
        if instance is None:
            return self  # type: ignore[return-value]
        value = getattr(django_settings, self.key, self.default)
        if value is None:
            return self.default
        return self.cast(value) if self.cast is not None else value


def _int_or_none(value) -> int | None:
    return int(value) if value not in (None, "") else None


class ConsoleSettings:
    """Every TASKOPS_* setting with its default; a host project sets only what it changes.

    Read live (`config.read_only`), so Django's override_settings applies. The deployment in
    console/settings.py fills them from environment variables; docs/operations.md lists them.
    """

    # --- The Celery app, and how long the console waits for it ---
    celery_app: _Setting[str | None] = _Setting(None)  # "module:attr"; None: Celery's current app
    control_timeout: _Setting[float] = _Setting(1.0, float)
    broker_timeout: _Setting[float] = _Setting(2.0, float)
    # RabbitMQ's management API ("http://user:password@host:15672/"): unacknowledged counts
    # and every queue of the virtual host; "" leaves them unknown (the pages say so).
    rabbitmq_api: _Setting[str] = _Setting("", str)
    # How long many viewers share one reading of the cluster.
    live_ttl: _Setting[float] = _Setting(2.0, float)
    # Beat samples depths and workers every this many seconds (0 turns the sampler off).
    sample_interval: _Setting[float] = _Setting(10.0, float)
    depth_retention_hours: _Setting[float] = _Setting(24.0, float)
    worker_age_out_hours: _Setting[float] = _Setting(24.0, float)
    # A worker that said it started counts as "starting" (not "not answering") this long.
    worker_start_grace_seconds: _Setting[float] = _Setting(30.0, float)
    # A worker silent this long (no answer, no word from it) counts as offline (taskops.liveness).
    worker_offline_after_seconds: _Setting[float] = _Setting(120.0, float)
    # A queue no worker consumed for this long, with nothing in it, is listed as idle.
    queue_idle_hours: _Setting[float] = _Setting(24.0, float)
    beat_grace_seconds: _Setting[float] = _Setting(60.0, float)
    # The queue of the console's own tasks (bulk retry jobs).
    queue: _Setting[str] = _Setting("default", str)

    # --- Retry ---
    retry_chunk_size: _Setting[int] = _Setting(1000, int)
    retry_chunk_delay: _Setting[float] = _Setting(0.0, float)
    retry_lease_seconds: _Setting[float] = _Setting(60.0, float)
    retry_publishers: _Setting[int | None] = _Setting(None, _int_or_none)  # None: the cores, ≤ 4
    retry_inline_limit: _Setting[int] = _Setting(100, int)
    capture_max_bytes: _Setting[int] = _Setting(256 * 1024, int)
    capture_exclude: _Setting[list[str]] = _Setting(["celery.*"], list)
    revoke_retention_hours: _Setting[float] = _Setting(168.0, float)

    # --- Safety ---
    read_only: _Setting[bool] = _Setting(False, bool)
    require_approval: _Setting[bool] = _Setting(False, bool)
    approval_ttl_minutes: _Setting[float] = _Setting(60.0, float)
    bulk_retry_reason_threshold: _Setting[int] = _Setting(100, int)
    # The most runs one bulk retry job may hold; more is refused.
    bulk_retry_max: _Setting[int] = _Setting(100_000, int)
    # The most pool processes the console lets anyone give one worker (grow, autoscale max).
    worker_pool_max: _Setting[int] = _Setting(64, int)
    # Task names (fnmatch patterns) the console never sends or retries, for anyone.
    task_deny: _Setting[list[str]] = _Setting(["celery.*", "taskops.*"], list)
    # {group: [patterns]}: members of a group with an entry may send only matching tasks; a
    # group without an entry adds no restriction (superusers are never restricted).
    task_allow: _Setting[dict[str, list[str]]] = _Setting({}, dict)

    # --- Production: proxies ---
    # Addresses or networks of the reverse proxies whose X-Forwarded-For is believed (none: REMOTE_ADDR).
    trusted_proxies: _Setting[list[str]] = _Setting([], list)
    # Sessions (SessionTimeoutMiddleware): ended this long after the login, or after this long
    # without a request of the user's own (the pages' background refresh does not count).
    session_max_hours: _Setting[float] = _Setting(8.0, float)
    session_idle_minutes: _Setting[float] = _Setting(30.0, float)
    # PostgreSQL: each statement of a web request may run this long (0: no limit of the console's).
    db_statement_timeout_ms: _Setting[int] = _Setting(5000, int)
    # A web request waits this long for a database lock (PostgreSQL lock_timeout, SQLite busy
    # timeout) before its page says the database is busy (0: the database's own wait).
    db_lock_timeout_ms: _Setting[int] = _Setting(3000, int)
    # Failed logins and refused requests of visitors not logged in: audited up to this many a
    # minute (all web processes together), so a storm cannot fill the disk.
    audit_visitor_refusals_per_minute: _Setting[int] = _Setting(30, int)
    # The Content-Security-Policy header of every response (ContentSecurityPolicyMiddleware).
    content_security_policy: _Setting[str] = _Setting(CONTENT_SECURITY_POLICY, str)

    # Values under keys containing one of these names (any case, separators ignored) are shown
    # as •••• on every page, export and audit entry, and never found by search.
    mask_keys: _Setting[list[str]] = _Setting([
        "password", "passwd", "secret", "token", "authorization", "api_key", "apikey", "card",
        "card_number", "cvv", "private_key", "credential",
    ], list)

    @property
    def sample_period(self) -> float:
        """Seconds between two samples when reading their history (the default while sampling is off)."""
        return self.sample_interval or type(self).__dict__["sample_interval"].default

    # --- Reports and metrics ---
    reports: _Setting[dict] = _Setting({})
    metrics_token: _Setting[str] = _Setting("", str)

    # --- Input limits (docs/operations.md, "Input limits") ---
    search_max_chars: _Setting[int] = _Setting(1000, int)
    # Text areas of the console's forms (JSON arguments, headers, descriptions).
    text_field_max_chars: _Setting[int] = _Setting(200_000, int)
    import_max_file_bytes: _Setting[int] = _Setting(5 * 1024 * 1024, int)
    import_max_unpacked_bytes: _Setting[int] = _Setting(20 * 1024 * 1024, int)  # XLSX contents
    import_max_rows: _Setting[int] = _Setting(5000, int)
    import_max_columns: _Setting[int] = _Setting(100, int)
    import_max_depth: _Setting[int] = _Setting(20, int)


config = ConsoleSettings()


@lru_cache(maxsize=1)
def celery_app() -> Celery:
    """Return the Celery app named by TASKOPS_CELERY_APP ("module:attr"), else Celery's current app.

    Its task modules are imported (autodiscovery happens only in workers otherwise), so the
    console knows the project's tasks and their signatures.
    """
    path = config.celery_app
    if path:
        app = import_string(path.replace(":", "."))
    else:
        app = current_app._get_current_object()
    app.loader.import_default_modules()
    return app
