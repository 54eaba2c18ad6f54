"""System checks of the console's deployment: a cache shared by every process."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Warning as CheckWarning

PER_PROCESS_CACHES = ("django.core.cache.backends.locmem.LocMemCache",
                      "django.core.cache.backends.dummy.DummyCache")


def shared_cache_check(app_configs=None, **kwargs) -> list[CheckWarning]:
    """Warn when the default cache is one per process (or none): the console needs a shared one."""
    backend = settings.CACHES.get("default", {}).get("BACKEND", "")
    if backend not in PER_PROCESS_CACHES:
        return []
    return [CheckWarning(
        f"The default cache ({backend.rsplit('.', 1)[-1]}) is not shared between processes: each "
        "web process reads the cluster on its own, and beat's record of what it sent never reaches "
        "the pages.",
        hint="Use Redis (django.core.cache.backends.redis.RedisCache) or the database cache "
             "(DatabaseCache, then `manage.py createcachetable`).",
        id="taskops.W001")]
