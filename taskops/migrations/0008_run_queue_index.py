"""An index that serves the run list's queue filter: the captured routing key, newest first."""

from django.db import migrations

TABLE = "django_celery_results_taskresult"
INDEX = "taskops_run_queue_done"

# The queue of a run is the routing key of its captured call (TaskResult.meta is JSON text:
# {"taskops_call": {"routing_key": ...}}). The list filters and shows it through the same
# expression (taskops.selectors.runs.RunQueue), so the index serves it; a test checks the plan.
# On PostgreSQL a function, because a cast of text that is not JSON raises, and a results row
# must never fail to be written: the function answers NULL for such meta instead. Its
# exception block is a subtransaction, which PostgreSQL forbids in parallel mode, so it is
# PARALLEL UNSAFE: a query that uses it runs without parallel workers (the list's queries are
# index range scans of one page, which never use them).
PG_FUNCTION = """
CREATE OR REPLACE FUNCTION taskops_run_queue(meta text) RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL UNSAFE AS $$
BEGIN
    RETURN (meta::jsonb) -> 'taskops_call' ->> 'routing_key';
EXCEPTION WHEN others THEN
    RETURN NULL;
END
$$
"""
PG_EXPRESSION = "taskops_run_queue(meta)"
SQLITE_EXPRESSION = (
    "CASE WHEN json_valid(meta) THEN json_extract(meta, '$.taskops_call.routing_key') END"
)


def create(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(PG_FUNCTION)
        # Runs without a capture (NULL) are left out; built without locking writes.
        schema_editor.execute(
            f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {INDEX} ON {TABLE} "
            f"(({PG_EXPRESSION}), date_done DESC, id DESC) WHERE {PG_EXPRESSION} IS NOT NULL"
        )
    elif vendor == "sqlite":
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {INDEX} ON {TABLE} "
            f"(({SQLITE_EXPRESSION}), date_done DESC, id DESC)"
        )
    # Other databases: the list filters the queue without an index.


def drop(apps, schema_editor):
    schema_editor.execute(f"DROP INDEX IF EXISTS {INDEX}")
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP FUNCTION IF EXISTS taskops_run_queue(text)")


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run inside a transaction

    dependencies = [
        ("taskops", "0007_schedules_reports_approvals"),
    ]

    operations = [migrations.RunPython(create, drop)]
