"""A task sent to the real worker leaves a result row; a failing one leaves its traceback."""

import json
from pathlib import Path

import pytest
from django_celery_results.models import TaskResult

from taskops.conf import celery_app
from tests.support.poll import poll_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.smoke]


def _finished(task_id: str) -> TaskResult | None:
    return TaskResult.objects.filter(
        task_id=task_id, status__in=["SUCCESS", "FAILURE", "REVOKED"]
    ).first()


def test_report_task_runs_on_the_worker_and_its_result_row_is_stored(celery_worker):
    sent = celery_app().send_task("demo.tasks.generate_report", args=["roundtrip"], kwargs={"rows": 3})

    row = poll_until(lambda: _finished(sent.id), timeout=30, message="result row of the report task")

    assert row.status == "SUCCESS", row.traceback
    assert row.task_name == "demo.tasks.generate_report"
    # django-celery-results stores a JSON-quoted repr of the arguments, not the arguments.
    assert json.loads(row.task_args) == repr(["roundtrip"])
    assert json.loads(row.task_kwargs) == repr({"rows": 3})
    assert row.worker == celery_worker.name
    output = Path(row.result.strip('"'))
    assert output.name.startswith("roundtrip-") and output.exists()
    assert output.read_text().splitlines()[0] == "region,orders,revenue"


def test_failing_task_retries_with_backoff_then_stores_its_traceback(celery_worker):
    sent = celery_app().send_task(
        "demo.tasks.flaky_call", args=["partner-api/orders"], kwargs={"fail_rate": 1.0, "customer_id": 7}
    )

    row = poll_until(lambda: _finished(sent.id), timeout=60, message="flaky task ends in FAILURE")

    assert row.status == "FAILURE"
    assert "PartnerServiceError" in row.traceback
    assert "attempt 3 of 3" in row.traceback  # two retries happened before the final failure
    assert 'Traceback (most recent call last)' in row.traceback
