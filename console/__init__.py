"""TaskOps Console deployment: Django project settings, URLs and the Celery app."""

from console.celery import app as celery_app

__all__ = ("celery_app",)
