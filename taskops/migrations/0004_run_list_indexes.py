"""Indexes that serve the run list's default views on a results table of millions of rows."""

from django.db import migrations

TABLE = "django_celery_results_taskresult"
# name -> columns; every one ends with the list's order (newest first, id breaking ties).
INDEXES = {
    "taskops_run_done": "date_done DESC, id DESC",
    "taskops_run_status_done": "status, date_done DESC, id DESC",
    "taskops_run_task_done": "task_name, date_done DESC, id DESC",
    "taskops_run_periodic_done": "periodic_task_name, date_done DESC, id DESC",
}


def create(apps, schema_editor):
    # PostgreSQL builds them without locking writes (the table may already be large).
    concurrently = "CONCURRENTLY " if schema_editor.connection.vendor == "postgresql" else ""
    for name, columns in INDEXES.items():
        schema_editor.execute(
            f"CREATE INDEX {concurrently}IF NOT EXISTS {name} ON {TABLE} ({columns})"
        )


def drop(apps, schema_editor):
    for name in INDEXES:
        schema_editor.execute(f"DROP INDEX IF EXISTS {name}")


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run inside a transaction

    dependencies = [
        ("taskops", "0003_task_run"),
        ("django_celery_results", "0014_alter_taskresult_status"),
    ]

    operations = [migrations.RunPython(create, drop)]
