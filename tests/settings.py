"""Settings for the test process: the deployment's settings with test-only conveniences."""

import os

os.environ.setdefault("DJANGO_SECRET_KEY", "taskops-test-only-secret-key")

from console.settings import *  # noqa: E402,F401,F403

# Serve static files from the apps' folders (no collectstatic manifest in tests).
STORAGES = {
    **STORAGES,  # noqa: F405
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True
# `client.login()` authenticates without a request, which django-axes refuses: let it through
# (logins through the login page still meet the lockout).
AUTHENTICATION_BACKENDS = [
    "tests.support.auth.LockoutBackendAllowingTestLogin",
    "django.contrib.auth.backends.ModelBackend",
]
# Test users log in often: a fast hasher keeps the suite quick.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Each test process keeps its own cache (the shared Redis cache is tested explicitly).
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
SILENCED_SYSTEM_CHECKS = ["taskops.W001"]
# A loaded 2-core CI machine can take longer than production's 2 s to accept a connection.
if DATABASES["default"]["ENGINE"].endswith("postgresql"):  # noqa: F405
    DATABASES["default"]["OPTIONS"]["connect_timeout"] = 10  # noqa: F405
# Each pytest process gets its own SQLite test database, so parallel runs never share a file.
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):  # noqa: F405
    import tempfile

    DATABASES["default"]["TEST"]["NAME"] = os.path.join(  # noqa: F405
        tempfile.gettempdir(), f"taskops-test-{os.getpid()}.sqlite3"
    )
