"""Next fire times as beat computes them: across DST changes, in the schedule's zone; never-firing crontabs."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from taskops.schedule_forms import PeriodicTaskForm, ScheduleForm
from taskops.schedules.preview import NeverFires, crontab_never_fires, crontab_of, preview

UTC = timezone.utc
NEW_YORK = "America/New_York"
BERLIN = "Europe/Berlin"


def _crontab(zone: str, **fields) -> dict:
    return {"kind": "crontab", "minute": "0", "hour": "*", "day_of_month": "*",
            "month_of_year": "*", "day_of_week": "*", **fields, "timezone": zone}


def _utc_times(result) -> list[str]:
    return [t.at.astimezone(UTC).strftime("%Y-%m-%d %H:%M") for t in result.times]


def beat_loop(schedule: dict, start: datetime, runs: int) -> list[datetime]:
    """What a running beat sends: ask the schedule is_due with a clock that advances as beat sleeps.

    Independent of the preview's stepping: this is Celery's own is_due with beat's loop around it
    (last run = the moment it ran; sleep as long as is_due says; a real beat wakes more often,
    at least every 5 s, but the checks in between answer "not due").
    """
    crontab = crontab_of(schedule, schedule["timezone"])
    clock = [start]
    crontab.nowfun = crontab.nowfunc = lambda: clock[0]
    last, sent = start, []
    while len(sent) < runs:
        due, wait = crontab.is_due(last)
        if due:
            sent.append(clock[0])
            last = clock[0]
        clock[0] += timedelta(seconds=max(wait, 1))
    return sent


@pytest.mark.parametrize("zone, fields, start", [
    (NEW_YORK, {"minute": "30", "hour": "2"}, datetime(2026, 3, 5, 12, tzinfo=UTC)),
    (NEW_YORK, {"minute": "30", "hour": "1"}, datetime(2026, 10, 29, 12, tzinfo=UTC)),
    (NEW_YORK, {"minute": "*/20", "hour": "0-3"}, datetime(2026, 11, 1, 3, tzinfo=UTC)),
    (BERLIN, {"minute": "0", "hour": "*"}, datetime(2026, 10, 24, 21, tzinfo=UTC)),
    (BERLIN, {"minute": "30", "hour": "2"}, datetime(2026, 3, 26, 12, tzinfo=UTC)),
    (BERLIN, {"minute": "15", "hour": "1-3"}, datetime(2026, 3, 28, 20, tzinfo=UTC)),
])
def test_the_preview_is_what_a_running_beat_sends_across_a_dst_change(zone, fields, start):
    schedule = _crontab(zone, **fields)

    result = preview(schedule, now=start, count=10)

    assert not result.error
    # Compared in UTC: Python never calls a doubled wall time equal to an instant in another zone.
    assert [t.at.astimezone(UTC) for t in result.times] == [
        t.astimezone(UTC) for t in beat_loop(schedule, start, 10)]
    assert result.clock_changes, "a DST change falls among these runs"


def test_new_york_spring_forward_runs_the_missing_0230_at_0330_edt_and_warns():
    result = preview(_crontab(NEW_YORK, minute="30", hour="2"),
                     now=datetime(2026, 3, 6, 12, tzinfo=UTC), count=4)

    assert [t.text for t in result.times] == [
        "Sat 07 Mar 2026 02:30 EST", "Sun 08 Mar 2026 03:30 EDT",
        "Mon 09 Mar 2026 02:30 EDT", "Tue 10 Mar 2026 02:30 EDT"]
    assert _utc_times(result) == ["2026-03-07 07:30", "2026-03-08 07:30", "2026-03-09 06:30",
                                  "2026-03-10 06:30"]
    assert result.times[1].note == ("02:30 does not exist that day (clocks go forward): beat runs "
                                    "it at 03:30 EDT.")
    assert [t.note for t in result.times if t.note] == [result.times[1].note]
    (change,) = result.clock_changes
    assert change.text.startswith("Clocks go forward 1 hour on Sun 08 Mar 2026 at 02:00 (EST → EDT)")
    assert change.at == datetime(2026, 3, 8, 3, 0, tzinfo=ZoneInfo(NEW_YORK))
    assert result.timezone == NEW_YORK


def test_new_york_fall_back_runs_the_doubled_0130_once_at_the_first():
    result = preview(_crontab(NEW_YORK, minute="30", hour="1"),
                     now=datetime(2026, 10, 31, 12, tzinfo=UTC), count=3)

    assert [t.text for t in result.times] == [
        "Sun 01 Nov 2026 01:30 EDT", "Mon 02 Nov 2026 01:30 EST", "Tue 03 Nov 2026 01:30 EST"]
    assert _utc_times(result) == ["2026-11-01 05:30", "2026-11-02 06:30", "2026-11-03 06:30"]
    assert "happens twice that day" in result.times[0].note
    (change,) = result.clock_changes
    assert change.text.startswith("Clocks go back 1 hour on Sun 01 Nov 2026 at 02:00 (EDT → EST)")


def test_berlin_hourly_skips_the_repeated_hour_in_autumn():
    result = preview(_crontab(BERLIN), now=datetime(2026, 10, 24, 22, 30, tzinfo=UTC), count=4)

    # 01:00 CEST, 02:00 CEST, then 03:00 CET: the second 02:00 (CET) is not run again.
    assert [t.text for t in result.times] == [
        "Sun 25 Oct 2026 01:00 CEST", "Sun 25 Oct 2026 02:00 CEST", "Sun 25 Oct 2026 03:00 CET",
        "Sun 25 Oct 2026 04:00 CET"]
    assert _utc_times(result)[1:3] == ["2026-10-25 00:00", "2026-10-25 02:00"]
    (change,) = result.clock_changes
    assert "Clocks go back 1 hour on Sun 25 Oct 2026 at 03:00 (CEST → CET)" in change.text
    assert "02:00 to 02:59 happen twice" in change.text


def test_berlin_spring_forward_runs_the_missing_0230_at_0330_cest():
    result = preview(_crontab(BERLIN, minute="30", hour="2"),
                     now=datetime(2026, 3, 28, 12, tzinfo=UTC), count=2)

    assert [t.text for t in result.times] == ["Sun 29 Mar 2026 03:30 CEST",
                                              "Mon 30 Mar 2026 02:30 CEST"]
    assert "02:30 does not exist that day" in result.times[0].note
    assert "Clocks go forward 1 hour on Sun 29 Mar 2026 at 02:00 (CET → CEST)" in \
        result.clock_changes[0].text


def test_no_warning_when_no_dst_change_falls_among_the_runs():
    result = preview(_crontab(BERLIN, minute="0", hour="9", day_of_week="1-5"),
                     now=datetime(2026, 6, 1, 12, tzinfo=UTC), count=10)

    assert len(result.times) == 10 and not result.clock_changes
    assert all(t.text.endswith("09:00 CEST") for t in result.times)
    assert result.text == "At 09:00, Monday through Friday"


@pytest.mark.parametrize("fields", [
    {"day_of_month": "30", "month_of_year": "2"},
    {"day_of_month": "31", "month_of_year": "4,6,9,11"},
    {"day_of_month": "30-31", "month_of_year": "2"},
])
def test_a_crontab_that_can_never_fire_is_rejected(fields):
    with pytest.raises(NeverFires, match="can never fire"):
        crontab_of(fields, "UTC")
    result = preview(_crontab("UTC", **fields), now=datetime(2026, 1, 1, tzinfo=UTC))
    assert result.error.startswith("It can never fire") and not result.times
    form = ScheduleForm({"kind": "crontab", "minute": "0", "hour": "0", "day_of_week": "*",
                         "timezone": "UTC", **fields})
    assert not form.is_valid()
    assert "can never fire" in " ".join(form.errors["kind"])


def test_a_rare_but_possible_crontab_is_accepted():
    crontab = crontab_of({"day_of_month": "29", "month_of_year": "2", "day_of_week": "1"}, "UTC")

    assert crontab_never_fires(crontab) == ""
    result = preview(_crontab("UTC", minute="0", hour="0", day_of_month="29", month_of_year="2",
                              day_of_week="1"), now=datetime(2026, 1, 1, tzinfo=UTC), count=1)
    assert _utc_times(result) == ["2044-02-29 00:00"]  # the next 29 February that is a Monday


@pytest.mark.parametrize("fields, message", [
    ({"minute": "61"}, "minute"),
    ({"hour": "nine"}, "hour"),
    ({"day_of_week": "funday"}, "day_of_week"),
])
def test_invalid_crontab_fields_are_form_errors_not_crashes(fields, message):
    form = ScheduleForm({"kind": "crontab", "timezone": "UTC", **fields})

    assert not form.is_valid()
    assert message in form.errors or "kind" in form.errors


def test_interval_one_off_start_time_and_expiry():
    now = datetime(2026, 5, 1, 12, tzinfo=UTC)
    every = {"kind": "interval", "every": 90, "period": "seconds"}

    assert _utc_times(preview(every, now=now, count=3)) == [
        "2026-05-01 12:01", "2026-05-01 12:03", "2026-05-01 12:04"]
    late = preview(every, now=now, last_run_at=now - timedelta(hours=1), count=1)
    assert late.times[0].at == now  # overdue: beat sends it at once
    once = preview(every, now=now, one_off=True)
    assert len(once.times) == 1 and "One-off" in once.notes[0]
    later = preview(_crontab("UTC", minute="0", hour="9"), now=now,
                    start_time=datetime(2026, 5, 3, 7, 15, tzinfo=UTC), count=2)
    # django-celery-beat runs a task with a start time as soon as that time comes, then on schedule
    assert _utc_times(later) == ["2026-05-03 07:15", "2026-05-03 09:00"]
    assert later.times[0].note == ""
    ends = preview(every, now=now, expires=now + timedelta(minutes=4), count=10)
    assert len(ends.times) == 2 and any("expires" in n for n in ends.notes)


def test_clocked_runs_once_and_a_past_time_runs_at_once():
    now = datetime(2026, 5, 1, 12, tzinfo=UTC)
    ahead = preview({"kind": "clocked", "clocked_time": "2026-05-02T08:00:00+00:00"}, now=now)
    assert _utc_times(ahead) == ["2026-05-02 08:00"]
    past = preview({"kind": "clocked", "clocked_time": "2026-04-02T08:00:00+00:00"}, now=now)
    assert past.times[0].at == now and "passed" in past.notes[0]


@pytest.mark.parametrize("schedule", [
    {"kind": "crontab", "minute": "0", "timezone": "Mars/Olympus"},
    {"kind": "interval", "every": 0, "period": "seconds"},
    {"kind": "interval", "every": 5, "period": "fortnights"},
    {"kind": "clocked", "clocked_time": "not a date"},
    {"kind": "solar", "event": "sunrise", "latitude": "52.5", "longitude": "13.4"},
    {"kind": "weekly"},
    {},
])
def test_bad_schedules_give_an_error_not_an_exception(schedule):
    result = preview(schedule, now=datetime(2026, 5, 1, tzinfo=UTC))

    assert result.error and not result.times


@pytest.mark.django_db
def test_the_form_refuses_an_unknown_task_unless_forced_and_checks_arguments():
    data = {"name": "form-check", "task": "nowhere.task", "kind": "interval", "every": "5",
            "period": "minutes", "args": "[]", "kwargs": "{}", "headers": "{}",
            "enabled": "on", "reason": "testing"}
    form = PeriodicTaskForm(data, task_names=("demo.tasks.generate_report",))
    assert not form.is_valid() and "No task 'nowhere.task' is registered" in form.errors["task"][0]

    forced = PeriodicTaskForm({**data, "task_forced": "on"}, task_names=())
    assert forced.is_valid(), forced.errors
    assert forced.task_unknown

    bad_args = PeriodicTaskForm({**data, "task": "demo.tasks.generate_report", "args": "[1, 2, 3, 4]",
                                 "kwargs": '{"nope": 1}'}, task_names=("demo.tasks.generate_report",))
    assert not bad_args.is_valid() and "do not fit demo.tasks.generate_report" in str(bad_args.errors)
    not_json = PeriodicTaskForm({**data, "args": "[1,", "task_forced": "on"}, task_names=())
    assert not not_json.is_valid() and "Not valid JSON" in str(not_json.errors["args"])
    no_reason = PeriodicTaskForm({**data, "reason": " ", "task_forced": "on"}, task_names=())
    assert not no_reason.is_valid() and "reason" in no_reason.errors


@pytest.mark.django_db
def test_the_form_keeps_typed_json_as_written_in_the_definition():
    form = PeriodicTaskForm({
        "name": "typed", "task": "demo.tasks.generate_report", "kind": "crontab", "minute": "0",
        "hour": "3", "day_of_month": "*", "month_of_year": "*", "day_of_week": "*",
        "timezone": BERLIN, "args": '["sales", {"__type__": "date", "__value__": "2026-01-02"}]',
        "kwargs": "{}", "headers": '{"x-team": "ops"}', "priority": "7", "queue": "reports",
        "enabled": "on", "reason": "typed"}, task_names=("demo.tasks.generate_report",))

    assert form.is_valid(), form.errors
    definition = form.definition()
    assert definition["args"] == ["sales", {"__type__": "date", "__value__": "2026-01-02"}]
    assert definition["schedule"] == {"kind": "crontab", "minute": "0", "hour": "3",
                                      "day_of_month": "*", "month_of_year": "*", "day_of_week": "*",
                                      "timezone": BERLIN}
    assert (definition["headers"], definition["priority"], definition["queue"]) == (
        {"x-team": "ops"}, 7, "reports")


def test_a_solar_schedule_needs_ephem_where_beat_runs():
    from importlib.util import find_spec

    form = ScheduleForm({"kind": "solar", "event": "sunrise", "latitude": "52.52",
                         "longitude": "13.405"})
    if find_spec("ephem") is None:  # beat (same environment) could not load any schedule then
        assert not form.is_valid() and "ephem" in " ".join(form.errors["kind"])
    else:
        assert form.is_valid(), form.errors
        assert form.cleaned_data["schedule"]["event"] == "sunrise"
