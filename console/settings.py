"""Django settings for the TaskOps Console deployment, read from the environment."""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

from kombu import Exchange, Queue

from console.envconf import database_from_url, env_bool, env_json, env_list, redis_url_with_db

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("TASKOPS_VAR_DIR", BASE_DIR / "var")).resolve()

# --- Core -------------------------------------------------------------------------------
DEV_SECRET_KEY = "taskops-dev-secret-key-not-for-production"
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", DEV_SECRET_KEY)
DEBUG = env_bool("DJANGO_DEBUG", False)
if SECRET_KEY == DEV_SECRET_KEY and not DEBUG:
    warnings.warn(
        "DJANGO_SECRET_KEY is not set: the console runs with the public development key. "
        "Set DJANGO_SECRET_KEY before exposing it to anyone.",
        RuntimeWarning,
        stacklevel=1,
    )
    print(
        "!!! WARNING: DJANGO_SECRET_KEY is not set; using the public development key. !!!",
        file=sys.stderr,
    )

ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_celery_results",
    "django_celery_beat",
    "import_export",
    "taskops",
    "demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "taskops.middleware.RejectNulMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "console.urls"
WSGI_APPLICATION = "console.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # The deployment's own overrides (branding, admin index) win over the apps' templates.
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database ---------------------------------------------------------------------------
DATABASE_URL = os.environ.get("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'taskops.sqlite3'}"
DATABASES = {"default": database_from_url(DATABASE_URL, base_dir=BASE_DIR)}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- I18n -------------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TASKOPS_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

# --- Static and media -------------------------------------------------------------------
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # whitenoise serves from here once collected
MEDIA_ROOT = Path(os.environ.get("TASKOPS_MEDIA_ROOT", VAR_DIR / "media"))
MEDIA_URL = "media/"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
# The dev server and the tests serve files straight from the apps' static folders.
WHITENOISE_USE_FINDERS = DEBUG

# --- Security (production profile: behind TLS) ------------------------------------------
SESSION_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("DJANGO_BEHIND_TLS_PROXY", False) else None
)
X_FRAME_OPTIONS = "DENY"

# --- The demo workload (`make run`) ------------------------------------------------------
# How often the demo's "Partner API health check" schedule fires, in seconds (the stack test
# sets a few seconds so that it need not wait half a minute for beat's first dispatch).
DEMO_HEALTH_CHECK_SECONDS = int(os.environ.get("DEMO_HEALTH_CHECK_SECONDS", "30"))

# --- Email (the demo's email task writes messages to files) -----------------------------
EMAIL_BACKEND = os.environ.get(
    "DJANGO_EMAIL_BACKEND", "django.core.mail.backends.filebased.EmailBackend"
)
EMAIL_FILE_PATH = VAR_DIR / "mail"
DEFAULT_FROM_EMAIL = os.environ.get("DJANGO_DEFAULT_FROM_EMAIL", "taskops@localhost")

# --- Celery -----------------------------------------------------------------------------
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
CELERY_RESULT_BACKEND = "django-db"
CELERY_RESULT_EXTENDED = True
CELERY_TIMEZONE = TIME_ZONE
CELERY_ENABLE_UTC = True

# JSON only, never pickle.
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_EVENT_SERIALIZER = "json"

# States and events the console shows.
CELERY_TASK_TRACK_STARTED = True
CELERY_WORKER_SEND_TASK_EVENTS = True
CELERY_TASK_SEND_SENT_EVENT = True

# Nothing hangs on a dead broker: bounded connects, bounded publish retries.
CELERY_BROKER_CONNECTION_TIMEOUT = 2
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None  # workers keep trying; the web side is bounded below
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "socket_connect_timeout": 2,
    "socket_timeout": 10,
    "socket_keepalive": True,
    "retry_on_timeout": False,
    "max_retries": 2,
    "visibility_timeout": 3600,
    "priority_steps": [0, 3, 6, 9],
    "queue_order_strategy": "priority",
    "health_check_interval": 25,
}
CELERY_TASK_PUBLISH_RETRY = True
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.5,
    "interval_max": 1,
}
CELERY_RESULT_BACKEND_ALWAYS_RETRY = True
CELERY_RESULT_BACKEND_MAX_RETRIES = 5

# Routed queues, each with priorities. Redis emulates them with one list per priority step
# (0 is the most urgent there); RabbitMQ uses x-max-priority (9 is the most urgent there).
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_QUEUE_MAX_PRIORITY = 9
CELERY_TASK_QUEUES = [
    Queue(name, Exchange(name, type="direct"), routing_key=name, queue_arguments={"x-max-priority": 9})
    for name in ("default", "reports", "emails")
]
CELERY_TASK_ROUTES = {
    "demo.tasks.generate_report": {"queue": "reports", "routing_key": "reports"},
    "demo.tasks.send_email": {"queue": "emails", "routing_key": "emails"},
}

# Workers: one message at a time per process, acknowledged after the work is done.
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = True
CELERY_WORKER_STATE_DB = os.environ.get("CELERY_WORKER_STATE_DB") or None

# Beat keeps its schedule in the database (django-celery-beat).
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"

# --- Cache: shared by the web processes so many viewers cost one broker call per period ---
TASKOPS_CACHE_URL = os.environ.get("TASKOPS_CACHE_URL", redis_url_with_db(CELERY_BROKER_URL, 1))
CACHES = {
    "default": (
        {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": TASKOPS_CACHE_URL,
            "KEY_PREFIX": "taskops",
            # A paused or dead Redis must not stall a page: fail fast, the console falls back.
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
        if TASKOPS_CACHE_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}

# --- TaskOps ----------------------------------------------------------------------------
# Where the console finds the Celery app (the console app never imports this project).
TASKOPS_CELERY_APP = "console.celery:app"
# Seconds the console waits for the broker or a worker before it shows a banner.
TASKOPS_CONTROL_TIMEOUT = float(os.environ.get("TASKOPS_CONTROL_TIMEOUT", "1.0"))
TASKOPS_BROKER_TIMEOUT = float(os.environ.get("TASKOPS_BROKER_TIMEOUT", "1.5"))
# How long many viewers share one reading of the cluster (the dashboard's fastest refresh).
TASKOPS_LIVE_TTL = float(os.environ.get("TASKOPS_LIVE_TTL", "2.0"))
# Beat samples queue depths and looks for workers every this many seconds (0 turns it off).
TASKOPS_SAMPLE_INTERVAL = float(os.environ.get("TASKOPS_SAMPLE_INTERVAL", "10"))
TASKOPS_DEPTH_RETENTION_HOURS = float(os.environ.get("TASKOPS_DEPTH_RETENTION_HOURS", "24"))
TASKOPS_WORKER_AGE_OUT_HOURS = float(os.environ.get("TASKOPS_WORKER_AGE_OUT_HOURS", "24"))
# A schedule whose expected run was not sent this many seconds after its time is flagged late.
TASKOPS_BEAT_GRACE_SECONDS = float(os.environ.get("TASKOPS_BEAT_GRACE_SECONDS", "60"))
# The queue of the console's own tasks (bulk retry jobs).
TASKOPS_QUEUE = os.environ.get("TASKOPS_QUEUE", "default")
# Bulk retry: runs sent per chunk, an optional pause between chunks, the runner's lease.
TASKOPS_RETRY_CHUNK_SIZE = int(os.environ.get("TASKOPS_RETRY_CHUNK_SIZE", "1000"))
TASKOPS_RETRY_CHUNK_DELAY = float(os.environ.get("TASKOPS_RETRY_CHUNK_DELAY", "0"))
TASKOPS_RETRY_LEASE_SECONDS = float(os.environ.get("TASKOPS_RETRY_LEASE_SECONDS", "60"))
# Processes that run a big job's chunks beside its runner (unset: one per core, at most 4).
TASKOPS_RETRY_PUBLISHERS = (int(os.environ["TASKOPS_RETRY_PUBLISHERS"])
                            if os.environ.get("TASKOPS_RETRY_PUBLISHERS") else None)
# Retrying more runs than this at once becomes a background job.
TASKOPS_RETRY_INLINE_LIMIT = int(os.environ.get("TASKOPS_RETRY_INLINE_LIMIT", "100"))
# Faithful call capture for retry: the largest call kept, and tasks never captured.
TASKOPS_CAPTURE_MAX_BYTES = int(os.environ.get("TASKOPS_CAPTURE_MAX_BYTES", str(256 * 1024)))
TASKOPS_CAPTURE_EXCLUDE = env_list("TASKOPS_CAPTURE_EXCLUDE", ["celery.*"])
# How long the console keeps re-applying a revoke to workers that start.
TASKOPS_REVOKE_RETENTION_HOURS = float(os.environ.get("TASKOPS_REVOKE_RETENTION_HOURS", "168"))

# --- Safety: read-only mode, typed reasons, second-person approval ------------------------
# Turns every mutation off (the console becomes a viewer), whatever the user's group.
TASKOPS_READ_ONLY = env_bool("TASKOPS_READ_ONLY", False)
# Dangerous actions (purge, terminate, shutdown, big bulk retries, schedule import) then
# wait for a second person with the same permission; unapproved requests expire.
TASKOPS_REQUIRE_APPROVAL = env_bool("TASKOPS_REQUIRE_APPROVAL", False)
TASKOPS_APPROVAL_TTL_MINUTES = float(os.environ.get("TASKOPS_APPROVAL_TTL_MINUTES", "60"))
# A bulk retry of more runs than this is a dangerous action (typed reason, approval).
TASKOPS_BULK_RETRY_REASON_THRESHOLD = int(
    os.environ.get("TASKOPS_BULK_RETRY_REASON_THRESHOLD", "100")
)

# --- Reports and metrics ----------------------------------------------------------------
# Which tasks are reports: {"title": "task name or fnmatch pattern", "title 2": [names or
# patterns]} (JSON in the env var); a report task returns the path of its output file.
TASKOPS_REPORTS = env_json("TASKOPS_REPORTS", None) or {
    "Daily reports": "demo.tasks.generate_report",
}
# /metrics answers a staff login with the dashboard permission, or this bearer token.
TASKOPS_METRICS_TOKEN = os.environ.get("TASKOPS_METRICS_TOKEN", "")

# --- Logging ----------------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    # sys.__stderr__: Celery redirects sys.stderr into its logger in workers and beat, and a
    # handler writing there again would be dropped as recursion.
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain",
                             "stream": "ext://sys.__stderr__"}},
    "root": {"handlers": ["console"], "level": os.environ.get("DJANGO_LOG_LEVEL", "INFO")},
}
