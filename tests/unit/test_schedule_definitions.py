"""Portable schedule definitions: a schedule written from its definition reads back the same."""

import pytest
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from taskops.schedules.definitions import definition_apply, definition_changes, definition_of

pytestmark = pytest.mark.django_db

NIGHTLY = {
    "name": "nightly report",
    "schedule": {"kind": "crontab", "minute": "30", "hour": "2", "day_of_month": "*",
                 "month_of_year": "*", "day_of_week": "1-5", "timezone": "Europe/Berlin"},
    "task": "demo.tasks.generate_report",
    "args": ["sales"],
    "kwargs": {"region": "eu", "when": "2026-11-21T10:00:00+00:00"},
    "queue": "reports",
    "priority": 6,
    "enabled": True,
}


def test_a_definition_round_trips_through_the_database():
    task = definition_apply(NIGHTLY)

    again = definition_of(PeriodicTask.objects.get(pk=task.pk))

    assert {k: again[k] for k in NIGHTLY} == NIGHTLY
    assert again["exchange"] is None and again["one_off"] is False


def test_applying_the_same_definition_twice_changes_nothing_and_shares_the_crontab():
    first = definition_apply(NIGHTLY)
    before = definition_of(first)
    second = definition_apply(NIGHTLY)

    assert second.pk == first.pk
    assert definition_changes(before, definition_of(second)) == []
    assert CrontabSchedule.objects.filter(hour="2", minute="30").count() == 1


def test_changes_name_each_field_that_differs_including_schedule_parts():
    before = definition_of(definition_apply(NIGHTLY))
    after = definition_of(definition_apply({**NIGHTLY, "priority": 3, "schedule": {
        **NIGHTLY["schedule"], "hour": "4"}}))

    assert definition_changes(before, after) == [
        {"field": "priority", "before": 6, "after": 3},
        {"field": "schedule.hour", "before": "2", "after": "4"},
    ]


def test_an_unknown_schedule_kind_is_a_validation_error():
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError):
        definition_apply({**NIGHTLY, "schedule": {"kind": "lunar"}})
