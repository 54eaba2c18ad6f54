"""The console's settings and the Celery app it operates, with their defaults."""

from __future__ import annotations

from functools import lru_cache

from celery import Celery
from django.conf import settings
from django.utils.module_loading import import_string


@lru_cache(maxsize=1)
def celery_app() -> Celery:
    """Return the Celery app named by TASKOPS_CELERY_APP ("module:attr"), else Celery's current app.

    Its task modules are imported (autodiscovery happens only in workers otherwise), so the
    console knows the project's tasks and their signatures.
    """
    path = getattr(settings, "TASKOPS_CELERY_APP", None)
    if path:
        app = import_string(path.replace(":", "."))
    else:
        from celery import current_app

        app = current_app._get_current_object()
    app.loader.import_default_modules()
    return app


def control_timeout() -> float:
    """Seconds a control broadcast waits for worker replies."""
    return float(getattr(settings, "TASKOPS_CONTROL_TIMEOUT", 1.0))


def broker_timeout() -> float:
    """Seconds the console's own broker connections wait to connect or read."""
    return float(getattr(settings, "TASKOPS_BROKER_TIMEOUT", 2.0))
