"""A run's captured call survives the state writes made without it (the worker's main process writes RETRY, lost-worker FAILURE, REVOKED)."""

from __future__ import annotations

import pytest
from django_celery_results.models import TaskResult
from kombu.utils.json import loads

from taskops.capture import CALL_KEY, CapturedCall, call_from_meta
from tests.support.tasks import captured_meta

pytestmark = pytest.mark.django_db

TASK = "demo.tasks.flaky_call"


def _store(status: str, meta: str | None, task_name: str = TASK) -> TaskResult:
    return TaskResult.objects.store_result("application/json", "utf-8", "run-1", "null", status,
                                           meta=meta, task_name=task_name)


def test_a_write_without_the_call_keeps_the_stored_one():
    _store("STARTED", captured_meta(TASK, args=[1], routing_key="billing"))

    _store("RETRY", '{"children": []}')

    stored = TaskResult.objects.get(task_id="run-1")
    assert stored.status == "RETRY"
    captured = call_from_meta(stored.meta)
    assert isinstance(captured, CapturedCall)
    assert (captured.args, captured.routing_key) == ([1], "billing")
    assert loads(stored.meta)["children"] == []


def test_a_write_with_a_call_of_its_own_replaces_it():
    _store("STARTED", captured_meta(TASK, args=[1]))

    _store("RETRY", captured_meta(TASK, args=[2]))

    assert call_from_meta(TaskResult.objects.get(task_id="run-1").meta).args == [2]


@pytest.mark.parametrize("meta", [None, "", "not json", "[1, 2]"])
def test_odd_meta_never_breaks_a_write(meta):
    _store("STARTED", captured_meta(TASK, args=[1]))

    _store("FAILURE", meta)

    stored = TaskResult.objects.get(task_id="run-1")
    assert stored.status == "FAILURE"
    if meta in (None, ""):  # nothing said: the call is kept
        assert CALL_KEY in loads(stored.meta)
    else:  # not an object: left as written
        assert stored.meta == meta


def test_only_a_write_without_the_call_reads_the_stored_meta():
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def queries(task_name: str, meta: str) -> int:
        TaskResult.objects.all().delete()
        _store("STARTED", captured_meta(task_name), task_name=task_name)
        with CaptureQueriesContext(connection) as context:
            _store("SUCCESS", meta, task_name=task_name)
        return len(context.captured_queries)

    with_call = queries(TASK, captured_meta(TASK))
    assert queries(TASK, '{"children": []}') == with_call + 1
    # Tasks never captured (TASKOPS_CAPTURE_EXCLUDE, celery.* by default) are not looked up.
    assert queries("celery.chord_unlock", '{"children": []}') == with_call
