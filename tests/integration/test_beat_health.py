"""Beat health with a real beat: dispatching is healthy; a stopped beat leaves due schedules late, then missed."""

from __future__ import annotations

import pytest
from django.core.cache import caches
from django.test import override_settings
from django.urls import reverse
from django_celery_results.models import TaskResult

from taskops import broker
from taskops.schedules.definitions import definition_apply
from taskops.selectors.beat_health import beat_health
from tests.support.poll import poll_until
from tests.support.tasks import unique

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def beat_cache(isolated_broker):
    """The cache beat records its dispatches in, as in production: Redis DB 1 of the broker's server."""
    location = isolated_broker.url.rsplit("/", 1)[0] + "/1"
    with override_settings(CACHES={"default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": location,
        "KEY_PREFIX": "taskops", "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
    }}):
        caches["default"].clear()
        yield caches["default"]


@pytest.fixture
def short_grace(settings):
    settings.TASKOPS_BEAT_GRACE_SECONDS = 2
    settings.TASKOPS_SAMPLE_INTERVAL = 1
    settings.TASKOPS_LIVE_TTL = 0.1


def _every(seconds: int, *, name: str, queue: str) -> None:
    definition_apply({"name": name, "task": "demo.tasks.generate_report", "queue": queue,
                      "args": ["beat-health"], "kwargs": {"rows": 1},
                      "schedule": {"kind": "interval", "every": seconds, "period": "seconds"}})


def test_a_dispatching_beat_is_healthy_and_a_stopped_one_leaves_its_schedule_late_then_missed(
    beat_cache, short_grace, start_beat, start_worker, role_client
):
    name = f"every <2> seconds {unique('beat')}"
    _every(2, name=name, queue="default")
    start_worker("default")
    beat = start_beat(env={"TASKOPS_SAMPLE_INTERVAL": "1"})
    client = role_client("Operations")

    poll_until(lambda: TaskResult.objects.filter(periodic_task_name=name, status="SUCCESS").count() >= 2,
               timeout=60, message="beat sends the schedule and the worker runs it")
    health = beat_health()
    assert health.dispatch_recorded and health.last_dispatch_name == name
    assert health.dispatch_age_seconds < 4
    assert health.late == () and not health.due_not_sent
    poll_until(lambda: beat_health().sampler_alive, timeout=30, message="beat's sampler ticks")
    listing = client.get(reverse("admin:django_celery_beat_periodictask_changelist")).content.decode()
    assert 'data-beat-health="ok"' in listing
    assert "Beat last dispatched every &lt;2&gt; seconds" in listing

    beat.stop()
    stopped_at = beat_health().last_dispatch_at

    poll_until(lambda: beat_health().due_not_sent, timeout=30,
               message="the schedule is due and nothing is sent")
    late = beat_health().late
    assert [s.name for s in late] == [name]
    assert late[0].last_seen_at >= stopped_at  # its last send is beat's last dispatch
    assert late[0].expected_at > late[0].last_seen_at
    poll_until(lambda: beat_health().late[0].state == "missed", timeout=30,
               message="the next expected run has passed too")

    listing = client.get(reverse("admin:django_celery_beat_periodictask_changelist")).content.decode()
    assert 'data-beat-health="not-sending"' in listing and "Beat is not sending" in listing
    assert f'data-late-schedule="{name.replace("<", "&lt;").replace(">", "&gt;")}"' in listing
    assert "<2>" not in listing
    dashboard = client.get(reverse("admin:index")).content.decode()
    assert "Beat is not sending" in dashboard and "1 late" in dashboard


def test_beats_own_record_counts_sends_that_no_worker_has_run(beat_cache, short_grace, start_beat):
    name = unique("queued-only")
    queue = unique("nobody-consumes")
    _every(1, name=name, queue=queue)
    start_beat()

    poll_until(lambda: broker.queue_depths([queue], discover=False).queues[queue].depth >= 5,
               timeout=60, message="beat has sent the schedule five times")

    health = beat_health()
    assert not TaskResult.objects.filter(periodic_task_name=name).exists()  # nothing ran
    assert health.dispatch_recorded and health.last_dispatch_name == name
    assert health.late == () and not health.due_not_sent
