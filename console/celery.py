"""The Celery application of the console deployment (workers, beat and the web share it)."""

import os

from celery import Celery

from console import kombu_fixes

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")
kombu_fixes.install()

app = Celery("console")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
