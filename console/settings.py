"""Django settings for the TaskOps Console deployment, read from the environment."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured
from kombu import Exchange, Queue

from console.envconf import (
    cache_from_url,
    database_from_url,
    env_bool,
    env_json,
    env_list,
    redis_url_with_db,
    var_dir_from_env,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = var_dir_from_env(BASE_DIR)

# --- Core -------------------------------------------------------------------------------
DEV_SECRET_KEY = "taskops-dev-secret-key-not-for-production"
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY") or DEV_SECRET_KEY
DEBUG = env_bool("DJANGO_DEBUG", False)
if SECRET_KEY == DEV_SECRET_KEY and not DEBUG:
    # Anyone can read the development key: with it, sessions and password resets can be forged.
    raise ImproperlyConfigured(
        "DJANGO_SECRET_KEY is not set: the console refuses to start with the public development "
        "key while debug is off. Set DJANGO_SECRET_KEY to a long random value (for example "
        "`python -c 'import secrets; print(secrets.token_urlsafe(50))'`), or DJANGO_DEBUG=1 "
        "on a development machine."
    )

ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    # Before taskops: its login-failure receiver marks a lockout before the audit reads it.
    "axes",
    # Before the admin: the console's admin index (the dashboard) overrides the admin's own.
    "taskops",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_celery_results",
    "django_celery_beat",
    "import_export",
    "demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "taskops.middleware.ContentSecurityPolicyMiddleware",
    "taskops.middleware.RejectNulMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "taskops.middleware.StatementTimeoutMiddleware",
    "taskops.middleware.BusyTolerantSessionMiddleware",  # Django's, served through a locked database
    "django.middleware.common.CommonMiddleware",
    "taskops.middleware.FormTooLargeMiddleware",  # reads the form just before the CSRF check
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "taskops.middleware.SessionTimeoutMiddleware",
    "taskops.middleware.RefusalAuditMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",  # last: turns a refused login into the lockout page
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
# PostgreSQL stops any statement of a web request after this many milliseconds, and the page
# says so (workers, beat and management commands have no such limit); 0 turns it off.
TASKOPS_DB_STATEMENT_TIMEOUT_MS = int(os.environ.get("TASKOPS_DB_STATEMENT_TIMEOUT_MS", "5000"))
# A web request waits this long for a lock another process holds (PostgreSQL lock_timeout, the
# SQLite busy timeout, which is 20 s for workers and beat), then its page says the database is busy.
TASKOPS_DB_LOCK_TIMEOUT_MS = int(os.environ.get("TASKOPS_DB_LOCK_TIMEOUT_MS", "3000"))

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

# --- Production: TLS proxy, HSTS, cookies, client addresses, login redirect --------------
# Behind a TLS-terminating proxy (DJANGO_BEHIND_TLS_PROXY=1) Django believes its
# X-Forwarded-Proto, redirects plain HTTP to HTTPS, sends HSTS and marks cookies secure.
BEHIND_TLS_PROXY = env_bool("DJANGO_BEHIND_TLS_PROXY", False)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if BEHIND_TLS_PROXY else None
SECURE_SSL_REDIRECT = env_bool("DJANGO_SSL_REDIRECT", BEHIND_TLS_PROXY)
SECURE_HSTS_SECONDS = int(os.environ.get("DJANGO_HSTS_SECONDS") or (31_536_000 if BEHIND_TLS_PROXY else 0))
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_HSTS_PRELOAD", True)
SESSION_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", BEHIND_TLS_PROXY)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
X_FRAME_OPTIONS = "DENY"
# The reverse proxies (addresses or networks) whose X-Forwarded-For names the client in the
# audit log and the login lockout; none: the connecting address, whatever the headers say.
TASKOPS_TRUSTED_PROXIES = env_list("TASKOPS_TRUSTED_PROXIES", [])
# The admin is the console: logins land on its dashboard.
LOGIN_URL = "admin:login"
LOGIN_REDIRECT_URL = "admin:index"
# A console that can shut workers down: a session ends 8 h after the login, or after 30 min
# without a request of the user's own (the pages' background refresh does not count).
TASKOPS_SESSION_MAX_HOURS = float(os.environ.get("TASKOPS_SESSION_MAX_HOURS", "8"))
TASKOPS_SESSION_IDLE_MINUTES = float(os.environ.get("TASKOPS_SESSION_IDLE_MINUTES", "30"))
SESSION_COOKIE_AGE = int(TASKOPS_SESSION_MAX_HOURS * 3600)
# Refused requests (403 at a view, CSRF failures) and failed logins are audit entries; those of
# visitors not logged in up to this many a minute (a storm cannot fill the disk).
CSRF_FAILURE_VIEW = "taskops.views.csrf.csrf_failure"
TASKOPS_AUDIT_VISITOR_REFUSALS_PER_MINUTE = int(
    os.environ.get("TASKOPS_AUDIT_VISITOR_REFUSALS_PER_MINUTE", "30")
)
# Scripts, styles, images and fonts from the console's own origin only (taskops.conf has the
# policy); set this to replace it, e.g. to add a CDN.
TASKOPS_CONTENT_SECURITY_POLICY = os.environ.get("TASKOPS_CONTENT_SECURITY_POLICY") or None

# --- Login lockout (django-axes) ----------------------------------------------------------
# After DJANGO_LOGIN_FAILURE_LIMIT wrong passwords for one username from one address, logins of
# that username from that address are refused (429) for DJANGO_LOGIN_COOLOFF_MINUTES; a success
# before that clears the count. The address is the client behind TASKOPS_TRUSTED_PROXIES.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = int(os.environ.get("DJANGO_LOGIN_FAILURE_LIMIT", "5"))
AXES_COOLOFF_TIME = timedelta(minutes=float(os.environ.get("DJANGO_LOGIN_COOLOFF_MINUTES", "15")))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
# Attempts during a lockout neither extend it nor add to its record: the record of one
# username and address stays a few kilobytes, and is deleted once its cool-off has passed.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_CLIENT_IP_CALLABLE = "taskops.client_ip.client_ip"
AXES_LOCKOUT_TEMPLATE = "admin/login_locked.html"
AXES_VERBOSE = False

# --- Error reports: the debug page and error emails never show a password inside a URL ------
DEFAULT_EXCEPTION_REPORTER_FILTER = "taskops.error_reports.CredentialHidingExceptionReporterFilter"
DEFAULT_EXCEPTION_REPORTER = "taskops.error_reports.CredentialHidingExceptionReporter"

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

# --- Cache: shared by every web process, worker and beat, so many viewers cost one broker call
# per period. The broker's Redis (database 1) by default; with no Redis (a RabbitMQ broker, or
# TASKOPS_CACHE_URL empty or "db") the database, table taskops_cache (createcachetable).
TASKOPS_CACHE_URL = os.environ.get("TASKOPS_CACHE_URL", redis_url_with_db(CELERY_BROKER_URL, 1))
CACHES = {"default": cache_from_url(TASKOPS_CACHE_URL)}

# --- TaskOps ----------------------------------------------------------------------------
# Where the console finds the Celery app (the console app never imports this project).
TASKOPS_CELERY_APP = "console.celery:app"
# Seconds the console waits for the broker or a worker before it shows a banner.
TASKOPS_CONTROL_TIMEOUT = float(os.environ.get("TASKOPS_CONTROL_TIMEOUT", "1.0"))
TASKOPS_BROKER_TIMEOUT = float(os.environ.get("TASKOPS_BROKER_TIMEOUT", "1.5"))
# RabbitMQ only: its management API, for messages in flight (http://user:password@host:15672/).
TASKOPS_RABBITMQ_API = os.environ.get("TASKOPS_RABBITMQ_API", "")
# How long many viewers share one reading of the cluster (the dashboard's fastest refresh).
TASKOPS_LIVE_TTL = float(os.environ.get("TASKOPS_LIVE_TTL", "2.0"))
# Beat samples queue depths and looks for workers every this many seconds (0 turns it off).
TASKOPS_SAMPLE_INTERVAL = float(os.environ.get("TASKOPS_SAMPLE_INTERVAL", "10"))
TASKOPS_DEPTH_RETENTION_HOURS = float(os.environ.get("TASKOPS_DEPTH_RETENTION_HOURS", "24"))
TASKOPS_WORKER_AGE_OUT_HOURS = float(os.environ.get("TASKOPS_WORKER_AGE_OUT_HOURS", "24"))
# Worker states (docs/operations.md): "starting" lasts at most the grace; a worker silent for
# OFFLINE_AFTER counts as offline. A queue nobody consumed for IDLE_HOURS is listed as idle.
TASKOPS_WORKER_START_GRACE_SECONDS = float(os.environ.get("TASKOPS_WORKER_START_GRACE_SECONDS", "30"))
TASKOPS_WORKER_OFFLINE_AFTER_SECONDS = float(
    os.environ.get("TASKOPS_WORKER_OFFLINE_AFTER_SECONDS", "120"))
TASKOPS_QUEUE_IDLE_HOURS = float(os.environ.get("TASKOPS_QUEUE_IDLE_HOURS", "24"))
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
# Values under keys containing one of these names are shown as •••• (comma-separated; unset:
# the console's defaults, listed in docs/operations.md). Workers read it too (capture).
TASKOPS_MASK_KEYS = env_list("TASKOPS_MASK_KEYS", []) or None
# The most runs one bulk retry job may hold: more is refused (narrow the filters).
TASKOPS_BULK_RETRY_MAX = int(os.environ.get("TASKOPS_BULK_RETRY_MAX", "100000"))
# Tasks nobody may send or retry from the console (comma-separated fnmatch patterns), and
# per group the only tasks its members may send ({"Support": ["demo.tasks.*"]} as JSON; a
# group without an entry is not restricted, superusers never are).
TASKOPS_TASK_DENY = env_list("TASKOPS_TASK_DENY", ["celery.*", "taskops.*"])
TASKOPS_TASK_ALLOW = env_json("TASKOPS_TASK_ALLOW", None) or {}

# --- Reports and metrics ----------------------------------------------------------------
# Which tasks are reports: {"title": "task name or fnmatch pattern", "title 2": [names or
# patterns]} (JSON in the env var); a report task returns the path of its output file.
TASKOPS_REPORTS = env_json("TASKOPS_REPORTS", None) or {
    "Daily reports": "demo.tasks.generate_report",
}
# /metrics answers a staff login with the dashboard permission, or this bearer token.
TASKOPS_METRICS_TOKEN = os.environ.get("TASKOPS_METRICS_TOKEN", "")

# --- Input limits (docs/operations.md, "Input limits") -----------------------------------
TASKOPS_SEARCH_MAX_CHARS = int(os.environ.get("TASKOPS_SEARCH_MAX_CHARS", "1000"))
TASKOPS_TEXT_FIELD_MAX_CHARS = int(os.environ.get("TASKOPS_TEXT_FIELD_MAX_CHARS", "200000"))
TASKOPS_IMPORT_MAX_FILE_BYTES = int(os.environ.get("TASKOPS_IMPORT_MAX_FILE_BYTES", str(5 * 2**20)))
TASKOPS_IMPORT_MAX_UNPACKED_BYTES = int(os.environ.get("TASKOPS_IMPORT_MAX_UNPACKED_BYTES",
                                                       str(20 * 2**20)))
TASKOPS_IMPORT_MAX_ROWS = int(os.environ.get("TASKOPS_IMPORT_MAX_ROWS", "5000"))
TASKOPS_IMPORT_MAX_COLUMNS = int(os.environ.get("TASKOPS_IMPORT_MAX_COLUMNS", "100"))
TASKOPS_IMPORT_MAX_DEPTH = int(os.environ.get("TASKOPS_IMPORT_MAX_DEPTH", "20"))

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
    # django-axes warns at every failed login, without a cap: the audit log records them (capped).
    "loggers": {"axes": {"level": "ERROR"}},
}
