"""Next fire times as beat computes them: across DST changes, in the schedule's zone; never-firing crontabs."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from django_celery_beat.models import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
)
import django_celery_beat.schedulers
from django_celery_beat.schedulers import SCHEDULE_SYNC_MAX_INTERVAL, DatabaseScheduler, ModelEntry

from taskops.schedule_forms import PeriodicTaskForm, ScheduleForm
from taskops.conf import celery_app
from taskops.schedules.beat import BeatTiming, crontab_load_hour, crontab_loaded
from taskops.schedules.preview import (
    CRONTAB_FIELDS,
    NeverFires,
    crontab_never_fires,
    crontab_of,
    preview,
)

UTC = timezone.utc
NEW_YORK = "America/New_York"
BERLIN = "Europe/Berlin"
RELOAD = SCHEDULE_SYNC_MAX_INTERVAL  # DatabaseScheduler rereads every schedule this often


def _crontab(zone: str, **fields) -> dict:
    return {"kind": "crontab", "minute": "0", "hour": "*", "day_of_month": "*",
            "month_of_year": "*", "day_of_week": "*", **fields, "timezone": zone}


def _utc_times(result) -> list[str]:
    return [t.at.astimezone(UTC).strftime("%Y-%m-%d %H:%M") for t in result.times]


def _entry_class(clock: list[datetime]) -> type[ModelEntry]:
    """django-celery-beat's own ModelEntry, reading the simulated clock instead of the real one."""

    class SimulatedEntry(ModelEntry):
        def __init__(self, model, app=None):
            super().__init__(model, app=app)
            self.schedule.nowfun = lambda: clock[0]

        def _default_now(self):
            return clock[0].astimezone(self.app.timezone)

        def _disable(self, model):  # as ModelEntry's, without the database
            model.no_changes, model.enabled = True, False

    return SimulatedEntry


def simulated_beat(model: PeriodicTask, *, now: datetime, runs: int, until: datetime,
                   reload_offset: float = RELOAD) -> list[datetime]:
    """What beat sends for the schedule `model` from `now` on (it was just changed, or beat started).

    Independent of the preview's stepping: django-celery-beat's ModelEntry (its last_run_at from the
    row, start time, expiry and one-off rules) and Celery's is_due, driven on a simulated, ideal
    clock as Celery's Scheduler.tick drives them: ask is_due at the moment its last answer named,
    send when due (ModelEntry.__next__ notes the run). Around it, DatabaseScheduler: it reads the
    row at `now` (the change), then rereads every RELOAD s from now + `reload_offset` on (a reread
    builds a fresh entry and asks it at once), holding a crontab with a single hour only within its
    window (schedules.beat.crontab_loaded, held to django-celery-beat's query below). Rereads
    while the entry is held and its last answer was not about its start time are skipped: Celery's
    answer is then exact, so asking earlier names the same moment; of the rereads while the
    window is unchanged, only the first after each quarter hour is simulated.
    """
    clock = [now]
    entry_class = _entry_class(clock)
    model.save = lambda *args, **kwargs: None  # ModelEntry saves a one-off it disables
    crontab = model.crontab
    load_hour = crontab_load_hour(crontab.hour, str(crontab.timezone)) if crontab else None
    sent: list[datetime] = []
    entry, ask_at, awaits_start = None, None, False

    def reread(at: datetime) -> None:
        nonlocal entry, ask_at
        clock[0] = at
        entry, ask_at = (entry_class(model), at) if crontab_loaded(load_hour, at) else (None, None)

    reread(now)
    next_reread = now + timedelta(seconds=reload_offset)
    while len(sent) < runs and model.enabled:
        if entry is not None and ask_at <= next_reread:
            if ask_at > until:
                break
            clock[0] = ask_at
            due, wait = entry.is_due()
            awaits_start = model.start_time is not None and ask_at < model.start_time
            if due:
                sent.append(ask_at)
                entry = next(entry)
            ask_at += timedelta(seconds=wait)
            continue
        if next_reread > until:
            break
        held = entry is not None
        if awaits_start or held != crontab_loaded(load_hour, next_reread):
            reread(next_reread)
            next_reread += timedelta(seconds=RELOAD)
        else:  # nothing changes before the next quarter hour: skip to the first reread after it
            quarter = next_reread.replace(minute=next_reread.minute - next_reread.minute % 15,
                                          second=0, microsecond=0) + timedelta(minutes=15)
            steps = max(1, math.ceil((quarter - next_reread) / timedelta(seconds=RELOAD)))
            next_reread += steps * timedelta(seconds=RELOAD)
    return sent


def _model(schedule: dict, **fields) -> PeriodicTask:
    """An unsaved periodic task on `schedule` (a definition's schedule part), as beat reads it."""
    kind = schedule["kind"]
    if kind == "crontab":
        row = {"crontab": CrontabSchedule(**{f: schedule[f] for f in CRONTAB_FIELDS},
                                          timezone=ZoneInfo(schedule["timezone"]))}
    elif kind == "interval":
        row = {"interval": IntervalSchedule(every=schedule["every"], period=schedule["period"])}
    else:
        row = {"clocked": ClockedSchedule(clocked_time=datetime.fromisoformat(schedule["clocked_time"]))}
    return PeriodicTask(name="simulated", task="demo.tasks.generate_report", enabled=True,
                        total_run_count=0, **row, **fields)


def beat_loop(schedule: dict, start: datetime, runs: int) -> list[datetime]:
    """What a beat sends for a crontab created (or changed) at `start`."""
    return simulated_beat(_model(schedule, date_changed=start), now=start, runs=runs,
                          until=start + timedelta(days=400))


ZONES = ("UTC", NEW_YORK, BERLIN, "Australia/Sydney", "Asia/Kolkata", "America/St_Johns",
         "Asia/Kathmandu", "Pacific/Chatham")
# Days on which clocks change in those zones (and the days around them are drawn too).
DST_DAYS = [datetime(2026, 3, 8), datetime(2026, 3, 29), datetime(2026, 4, 5), datetime(2026, 10, 4),
            datetime(2026, 10, 25), datetime(2026, 11, 1), datetime(2026, 9, 27)]
def _mostly(common: str, *others: str):
    return st.one_of(st.just(common), st.just(common), st.just(common), st.sampled_from(others))


CRONTABS = st.fixed_dictionaries({
    "minute": st.sampled_from(["*", "0", "30", "*/15", "5,35", "59", "0-10/5", "*/7"]),
    "hour": st.sampled_from(["*", "0", "1", "2", "3", "4", "9", "09", "23", "*/6", "1-3", "2,14"]),
    "day_of_month": _mostly("*", "1", "15", "29", "31", "1-7"),
    "month_of_year": _mostly("*", "1", "3", "10,11", "2"),
    "day_of_week": _mostly("*", "0", "1-5", "6"),
    "timezone": st.sampled_from(ZONES),
}).map(lambda fields: {"kind": "crontab", **fields})
INTERVALS = st.one_of(
    st.builds(lambda every, period: {"kind": "interval", "every": every, "period": period},
              st.integers(1, 100), st.sampled_from(["seconds", "minutes", "hours", "days"])),
    st.builds(lambda every: {"kind": "interval", "every": every, "period": "seconds"},
              st.integers(1, 10**6)),
)
SECONDS = st.floats(0, 86400 * 3, allow_nan=False)


@st.composite
def _moments(draw) -> datetime:
    """A moment in 2026, often within a day of a daylight saving change."""
    if draw(st.booleans()):
        day = draw(st.sampled_from(DST_DAYS)).replace(tzinfo=UTC)
        return day + timedelta(seconds=draw(st.floats(-86400 * 2, 86400 * 2, allow_nan=False)))
    return draw(st.datetimes(datetime(2026, 1, 1), datetime(2026, 12, 31),
                             timezones=st.just(UTC)))


@st.composite
def _stored(draw, now: datetime) -> dict:
    """A schedule's state as beat finds it: its last run (none, old, just now, in the future), last change."""
    changed = now - timedelta(seconds=draw(st.sampled_from([0.0, 1.0]) | SECONDS))
    last_run = draw(st.none() | st.builds(lambda s: now - timedelta(seconds=s),
                                          st.floats(0, 86400 * 90, allow_nan=False))
                    | st.builds(lambda s: now + timedelta(seconds=s), SECONDS))
    start = draw(st.none() | st.none() | st.builds(lambda s: now + timedelta(seconds=s),
                                                    st.floats(-86400 * 3, 86400 * 3, allow_nan=False)))
    expires = draw(st.none() | st.none() | st.none() | st.builds(
        lambda s: now + timedelta(seconds=s), st.floats(-3600, 86400 * 10, allow_nan=False)))
    return {"last_run_at": last_run, "date_changed": changed, "start_time": start,
            "expires": expires, "one_off": draw(st.booleans()) and draw(st.booleans())}


def _close(sent: list[datetime], previewed: list[datetime]) -> bool:
    """Equal to the second: beat's clock works in whole seconds (its heap drops the microseconds,
    a start-time wait is rounded up to the second)."""
    return len(sent) == len(previewed) and all(
        abs((a - b).total_seconds()) < 1 for a, b in zip(sent, previewed))


@settings(max_examples=300, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(schedule=st.one_of(CRONTABS, CRONTABS, INTERVALS), data=st.data(),
       reload_offset=st.floats(0.001, RELOAD), deadline=st.sampled_from([None, None, 120.0, 7200.0]))
def test_the_preview_is_what_beat_sends_for_any_schedule_last_run_and_zone(
        schedule, data, reload_offset, deadline):
    """Property: the previewed times are the sends of django-celery-beat's own entry and Celery's is_due."""
    if schedule["kind"] == "crontab":
        try:
            crontab_of(schedule, schedule["timezone"])
        except NeverFires:
            assume(False)
    now = data.draw(_moments(), label="now")
    stored = data.draw(_stored(now), label="stored")
    timing = BeatTiming(tick=5.0, reload=RELOAD, cron_deadline=deadline)
    result = preview(schedule, now=now, count=6, last_run_at=stored["last_run_at"],
                     changed_at=stored["date_changed"], start_time=stored["start_time"],
                     expires=stored["expires"], one_off=stored["one_off"], timing=timing)
    assert not result.error, result.error
    until = now + timedelta(days=40)
    previewed = [t.at for t in result.times if t.at <= until]
    conf = celery_app().conf  # Celery's crontab.is_due reads the deadline from it
    configured, conf.beat_cron_starting_deadline = conf.beat_cron_starting_deadline, deadline
    try:
        def sent(offset: float) -> list[datetime]:
            return simulated_beat(_model(schedule, **stored), now=now, runs=len(previewed) or 1,
                                  until=until, reload_offset=offset)

        first = result.times[0] if previewed else None
        if first is None or first.latest is None:
            assert _close(sent(reload_offset), previewed)
            return
        # Beat sends the first between `at` and `latest`, as its rereads fall; with a reread at
        # `at`, it sends every previewed time.
        aligned = (first.at - now).total_seconds() % RELOAD or RELOAD
        assert _close(sent(aligned), previewed)
        second = timedelta(seconds=1)
        assert first.at - second < sent(reload_offset)[0] < first.latest + second
    finally:
        conf.beat_cron_starting_deadline = configured


def test_after_setting_minute_star_beat_catches_up_at_once_and_the_preview_says_so():
    """The issue's case: edited at 00:44:24 to run every minute, last run the day before at 03:00."""
    now = datetime(2026, 6, 2, 0, 44, 24, tzinfo=UTC)
    every_minute = _crontab("UTC", minute="*", hour="*")
    last_run = datetime(2026, 6, 1, 3, 0, tzinfo=UTC)

    result = preview(every_minute, now=now, count=3, last_run_at=last_run)

    assert [t.at for t in result.times] == [now, datetime(2026, 6, 2, 0, 45, tzinfo=UTC),
                                           datetime(2026, 6, 2, 0, 46, tzinfo=UTC)]
    assert result.times[0].note.startswith("At once: beat counts from Mon 01 Jun 2026 03:00:00 UTC")
    assert [t.at for t in result.times] == simulated_beat(
        _model(every_minute, last_run_at=last_run, date_changed=now), now=now, runs=3,
        until=now + timedelta(days=1))
    # A new schedule (no last run) counts from its creation: no catch-up.
    fresh = preview(every_minute, now=now, count=1)
    assert fresh.times[0].at == datetime(2026, 6, 2, 0, 45, tzinfo=UTC) and not fresh.times[0].note


def test_a_daily_crontab_moved_later_today_runs_at_once_and_one_with_a_single_hour_when_loaded():
    """Beat counts from yesterday's 03:00: moving it to 05:00 sends yesterday's 05:00 at once, but
    django-celery-beat loads a crontab with one hour only from 2 hours before it."""
    now = datetime(2026, 6, 2, 4, 0, tzinfo=UTC)
    last_run = datetime(2026, 6, 1, 3, 0, tzinfo=UTC)
    five = preview(_crontab("UTC", minute="0", hour="5"), now=now, count=2, last_run_at=last_run)
    assert [t.at for t in five.times] == [now, datetime(2026, 6, 2, 5, 0, tzinfo=UTC)]

    nine = preview(_crontab("UTC", minute="0", hour="9"), now=now, count=2, last_run_at=last_run)

    assert [t.at for t in nine.times] == [datetime(2026, 6, 2, 7, 0, tzinfo=UTC),
                                         datetime(2026, 6, 2, 9, 0, tzinfo=UTC)]
    assert nine.times[0].latest == datetime(2026, 6, 2, 7, 5, 5, tzinfo=UTC)
    assert "only from 2 hours before that hour" in nine.times[0].note
    with_deadline = preview(_crontab("UTC", minute="0", hour="5"), now=now, count=1,
                            last_run_at=last_run, timing=BeatTiming(5.0, RELOAD, 600.0))
    assert with_deadline.times[0].at == datetime(2026, 6, 2, 5, 0, tzinfo=UTC)
    assert "beat skips it" in with_deadline.times[0].note


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
    # django-celery-beat runs a task with a start time once that time has come (a crontab at its
    # next reread of the schedules, within 5 minutes), then on schedule
    assert _utc_times(later) == ["2026-05-03 07:15", "2026-05-03 09:00"]
    assert later.times[0].latest == datetime(2026, 5, 3, 7, 20, 5, tzinfo=UTC)
    assert later.times[0].note.startswith("Beat sends it between Sun 03 May 2026 07:15:00 UTC and "
                                          "Sun 03 May 2026 07:20:05 UTC")
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


@pytest.mark.django_db
@pytest.mark.db_engine
def test_the_crontabs_beat_holds_are_those_django_celery_beats_query_loads(monkeypatch):
    """schedules.beat.crontab_loaded (which the preview and the simulated beat use) is held to
    DatabaseScheduler's own query, on the database, for every hour of a winter and a summer day."""
    zones = ("UTC", BERLIN, NEW_YORK, "Asia/Kolkata", "America/St_Johns", "Pacific/Chatham")
    hours = [str(h) for h in range(24)] + ["00", "09", "*", "9,10", "*/2", "1-3"]
    tasks = {}
    for zone in zones:
        for hour in hours:
            crontab = CrontabSchedule.objects.create(minute="0", hour=hour, timezone=ZoneInfo(zone))
            tasks[PeriodicTask.objects.create(name=f"{zone} {hour}", task="t", crontab=crontab).pk] = (
                hour, zone)
    scheduler = DatabaseScheduler.__new__(DatabaseScheduler)  # the query needs no running beat
    for day in (datetime(2026, 1, 14, tzinfo=UTC), datetime(2026, 7, 14, tzinfo=UTC)):
        for hour in range(24):
            at = day + timedelta(hours=hour, minutes=30)
            monkeypatch.setattr(django_celery_beat.schedulers, "aware_now", lambda at=at: at)
            loaded = set(scheduler.enabled_models_qs().values_list("pk", flat=True))
            assert {pk for pk, (h, zone) in tasks.items()
                    if crontab_loaded(crontab_load_hour(h, zone), at)} == loaded, at
