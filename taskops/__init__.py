"""TaskOps Console: a Django-admin operations console for Celery."""
