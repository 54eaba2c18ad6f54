"""Beat health from the schedules, the runs and beat's dispatch record: which expected runs did not happen."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest
from django_celery_beat.models import PeriodicTask
from django_celery_results.models import TaskResult

from taskops.beat_dispatch import dispatch_record
from taskops.schedules.definitions import definition_apply
from taskops.selectors.beat_health import beat_health

pytestmark = pytest.mark.django_db

UTC = timezone.utc
NOW = datetime(2026, 3, 10, 12, 0, 30, tzinfo=UTC)
HOURLY = {"kind": "crontab", "minute": "0", "hour": "*", "day_of_month": "*",
          "month_of_year": "*", "day_of_week": "*", "timezone": "UTC"}


@pytest.fixture(autouse=True)
def _no_sampler(settings):
    """These tests are about schedules; the sampler (off here) has its own test below."""
    settings.TASKOPS_SAMPLE_INTERVAL = 0


def _schedule(name: str, schedule: dict, *, changed: datetime = NOW - timedelta(days=1),
              **fields) -> PeriodicTask:
    task = definition_apply({"name": name, "task": "demo.tasks.generate_report", "schedule": schedule,
                             "one_off": schedule["kind"] == "clocked"})
    PeriodicTask.objects.filter(pk=task.pk).update(date_changed=changed, **fields)
    return task


def _ran(name: str, at: datetime) -> None:
    row = TaskResult.objects.create(task_id=str(uuid.uuid4()), task_name="demo.tasks.generate_report",
                                    periodic_task_name=name, status="SUCCESS")
    TaskResult.objects.filter(pk=row.pk).update(date_created=at, date_done=at + timedelta(seconds=2))


def _at(hh: int, mm: int, ss: int = 0, day: int = 10) -> datetime:
    return datetime(2026, 3, day, hh, mm, ss, tzinfo=UTC)


def test_a_schedule_that_ran_at_its_time_is_on_time():
    _schedule("hourly", HOURLY)
    _ran("hourly", _at(12, 0, 1))

    health = beat_health(now=_at(12, 30))

    assert health.late == () and health.ok and not health.due_not_sent
    assert health.last_dispatch_at == _at(12, 0, 1) and health.last_dispatch_name == "hourly"


def test_an_overdue_run_is_late_after_the_grace_and_missed_once_the_next_one_is_overdue_too():
    _schedule("hourly", HOURLY)
    _ran("hourly", _at(11, 0, 1))

    assert beat_health(now=_at(12, 0, 30)).late == ()  # 30 s overdue: within the 60 s grace
    late = beat_health(now=_at(12, 1, 30)).late
    assert [(s.name, s.expected_at, s.last_seen_at, s.state) for s in late] == [
        ("hourly", _at(12, 0), _at(11, 0, 1), "late")]
    assert beat_health(now=_at(13, 5)).late[0].state == "missed"


def test_beat_stopped_means_due_but_not_sent_and_a_later_dispatch_clears_it():
    _schedule("hourly", HOURLY)
    _schedule("every-10-min", {"kind": "interval", "every": 10, "period": "minutes"})
    _ran("hourly", _at(11, 0, 1))
    _ran("every-10-min", _at(11, 55))

    stopped = beat_health(now=_at(12, 6, 30))
    assert [s.name for s in stopped.late] == ["hourly", "every-10-min"]  # expected 12:00, 12:05
    assert stopped.due_not_sent and not stopped.ok

    _ran("every-10-min", _at(12, 5, 10))  # beat is sending; only "hourly" did not go
    sending = beat_health(now=_at(12, 6, 30))
    assert [s.name for s in sending.late] == ["hourly"]
    assert not sending.due_not_sent


def test_a_schedule_never_sent_counts_from_its_last_change():
    _schedule("new", HOURLY, changed=_at(11, 30))

    assert beat_health(now=_at(11, 59)).late == ()
    late = beat_health(now=_at(12, 2)).late
    assert [(s.name, s.expected_at, s.last_seen_at) for s in late] == [("new", _at(12, 0), None)]


def test_crontab_times_are_in_the_schedules_time_zone():
    # 09:00 in Berlin is 08:00 UTC in March (before the switch to summer time).
    _schedule("berlin", {**HOURLY, "hour": "9", "timezone": "Europe/Berlin"})
    _ran("berlin", _at(8, 0, 1, day=9))

    assert beat_health(now=_at(7, 59, day=10)).late == ()
    assert [s.expected_at for s in beat_health(now=_at(8, 2, day=10)).late] == [_at(8, 0, day=10)]


def test_disabled_expired_and_not_yet_started_schedules_are_not_expected_to_run():
    _schedule("disabled", HOURLY, enabled=False)
    _schedule("expired", HOURLY, expires=_at(9, 0))
    _schedule("later", HOURLY, start_time=_at(18, 0))

    health = beat_health(now=_at(12, 30))

    assert health.late == () and health.enabled_schedules == 2


def test_a_clocked_schedule_is_late_until_it_ran():
    _schedule("once", {"kind": "clocked", "clocked_time": "2026-03-10T11:00:00+00:00"})

    assert beat_health(now=_at(10, 59)).late == ()
    assert [(s.name, s.expected_at, s.state) for s in beat_health(now=_at(11, 5)).late] == [
        ("once", _at(11, 0), "late")]
    _ran("once", _at(11, 0, 2))
    assert beat_health(now=_at(11, 5)).late == ()


def test_a_start_time_in_the_past_is_when_beat_sends_a_schedule_it_never_ran():
    _schedule("started", HOURLY, start_time=_at(11, 10), changed=_at(9, 0))

    late = beat_health(now=_at(11, 15)).late

    assert [(s.name, s.expected_at) for s in late] == [("started", _at(11, 10))]


def test_beats_own_dispatch_record_counts_as_sent_without_any_run():
    now = datetime.now(UTC)
    _schedule("queued", {"kind": "interval", "every": 10, "period": "minutes"},
              changed=now - timedelta(minutes=30))

    assert [s.name for s in beat_health(now=now).late] == ["queued"]
    dispatch_record(sender="demo.tasks.generate_report", headers={"periodic_task_name": "queued"})
    dispatch_record(sender="demo.tasks.generate_report", headers={"id": "not periodic"})

    health = beat_health(now=datetime.now(UTC))
    assert health.late == ()
    assert health.dispatch_recorded and health.last_dispatch_name == "queued"
    assert health.dispatch_age_seconds < 5


def test_a_schedule_celery_cannot_read_is_reported_unchecked_not_an_error():
    task = _schedule("broken", HOURLY)
    from django_celery_beat.models import CrontabSchedule

    CrontabSchedule.objects.filter(pk=task.crontab_id).update(minute="99")

    health = beat_health(now=_at(12, 30))

    assert health.unchecked == ("broken",) and health.late == ()


def test_beat_health_costs_the_same_queries_for_3_or_30_schedules(django_assert_num_queries):
    for i in range(3):
        _schedule(f"s{i}", HOURLY)
    with django_assert_num_queries(2):
        beat_health(now=_at(12, 30))
    for i in range(3, 30):
        _schedule(f"s{i}", {"kind": "interval", "every": i, "period": "minutes"})
        _ran(f"s{i}", _at(12, 0))
    with django_assert_num_queries(2):
        health = beat_health(now=_at(12, 30))
    assert health.enabled_schedules == 30


def test_the_sampler_is_alive_while_it_samples(settings):
    from taskops.models import QueueDepthSample

    settings.TASKOPS_SAMPLE_INTERVAL = 10
    assert beat_health(now=_at(12, 0)).sampler_alive is False
    QueueDepthSample.objects.create(queue="default", depth=0, sampled_at=_at(11, 59, 50))
    assert beat_health(now=_at(12, 0)).sampler_alive is True
    assert beat_health(now=_at(12, 5)).sampler_alive is False
    settings.TASKOPS_SAMPLE_INTERVAL = 0
    assert beat_health(now=_at(12, 5)).sampler_alive is None


def test_viewers_read_the_health_beat_published_instead_of_computing_it(django_assert_num_queries):
    from taskops.selectors.beat_health import beat_health_publish, beat_health_shared

    _schedule("published", HOURLY)
    published = beat_health_publish()

    with django_assert_num_queries(0):
        shared = beat_health_shared()

    assert shared == published and shared.enabled_schedules == 1


def test_a_reading_beat_stopped_publishing_long_ago_is_not_trusted():
    import dataclasses

    from django.utils import timezone as dj_timezone

    from taskops import cache
    from taskops.selectors.beat_health import PUBLISHED_KEY, beat_health_publish, beat_health_shared

    _schedule("stale", HOURLY)
    old = dataclasses.replace(beat_health_publish(), enabled_schedules=99,
                              checked_at=dj_timezone.now() - timedelta(minutes=5))
    cache.values_set({PUBLISHED_KEY: {"health": old, "interval": 10}}, timeout=60)

    assert beat_health_shared().enabled_schedules == 1  # computed afresh, not beat's old word


def test_an_edit_keeps_the_last_run_so_a_time_that_passed_meanwhile_is_due_at_once():
    """As beat (and the preview): editing a schedule does not restart its clock."""
    _schedule("hourly", HOURLY, changed=_at(12, 30), last_run_at=_at(11, 0, 1))
    _ran("hourly", _at(11, 0, 1))

    assert beat_health(now=_at(12, 31)).late == ()  # beat sends it once it sees the edit
    late = beat_health(now=_at(12, 32)).late
    assert [(s.name, s.expected_at) for s in late] == [("hourly", _at(12, 30))]
