"""Schedule previews: the next fire times as beat computes them, clock changes among them, never-firing crontabs."""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone, tzinfo
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from celery.utils.time import remaining
from cron_descriptor import Options, get_description
from django.utils.dateparse import parse_datetime
from django_celery_beat.models import SOLAR_SCHEDULES, CrontabSchedule, SolarSchedule

from taskops.conf import celery_app

CRONTAB_FIELDS = ("minute", "hour", "day_of_month", "month_of_year", "day_of_week")
PREVIEW_COUNT = 10
# Weekdays and leap years repeat every 400 years: a crontab that fires in none of them never fires.
_CALENDAR_CYCLE_YEARS = 400
_PERIOD_WORDS = {"days": "day", "hours": "hour", "minutes": "minute", "seconds": "second",
                 "microseconds": "microsecond"}


@dataclass(frozen=True)
class FireTime:
    """One time beat would send the task, in the schedule's time zone, and what is odd about it."""

    at: datetime
    text: str
    note: str = ""


@dataclass(frozen=True)
class ClockChange:
    """A daylight saving change between now and the last previewed time."""

    at: datetime  # the instant of the change, in the schedule's time zone
    text: str


@dataclass(frozen=True)
class Preview:
    """The next fire times of a schedule, or why there are none."""

    timezone: str
    text: str = ""  # the schedule in words
    times: tuple[FireTime, ...] = ()
    clock_changes: tuple[ClockChange, ...] = ()
    notes: tuple[str, ...] = ()
    error: str = ""

    @property
    def next(self) -> FireTime | None:
        return self.times[0] if self.times else None


@lru_cache(maxsize=1)
def zone_names() -> frozenset[str]:
    """The names of the time zones a schedule may use (the IANA database's)."""
    return frozenset(available_timezones())


def zone(name: str) -> ZoneInfo:
    """The time zone called `name`; ValueError when there is none."""
    if str(name) not in zone_names():
        raise ValueError(f"Unknown time zone {name!r}.")
    try:
        return ZoneInfo(str(name))
    except (ZoneInfoNotFoundError, ValueError, TypeError) as exc:
        raise ValueError(f"Unknown time zone {name!r}.") from exc


def app_zone() -> tzinfo:
    """The zone beat keeps its clock in (the Celery app's timezone): intervals, solar, clocked."""
    return celery_app().timezone


class NeverFires(ValueError):
    """A crontab that no date satisfies (such as 30 February): beat would never run it."""


_NO_SUCH_DAY = ("It can never fire: none of its months has that day of the month (such as "
                "30 February or 31 April).")


@lru_cache(maxsize=2048)
def _crontab(minute: str, hour: str, day_of_month: str, month_of_year: str, day_of_week: str,
             timezone_name: str):
    row = CrontabSchedule(minute=minute, hour=hour, day_of_month=day_of_month,
                          month_of_year=month_of_year, day_of_week=day_of_week,
                          timezone=zone(timezone_name))
    try:
        crontab = row.schedule
    except Exception as exc:  # celery's ParseException, ValueError, IndexError on odd input
        if "never occurs" in str(exc):
            raise NeverFires(_NO_SUCH_DAY) from exc
        text = str(exc).removeprefix("Invalid crontab: ").rstrip(".")
        raise ValueError(f"Not a valid crontab: {text}.") from exc
    reason = crontab_never_fires(crontab)
    if reason:
        raise NeverFires(reason)
    return crontab


def crontab_of(fields: dict[str, Any], timezone_name: str):
    """The crontab beat builds from these fields (django-celery-beat's TzAwareCrontab).

    Raises ValueError with a readable message when a field or the time zone is not valid, and
    NeverFires (a ValueError) when no date satisfies it.
    """
    values = [str(fields.get(f) if fields.get(f) is not None else "*").strip() or "*"
              for f in CRONTAB_FIELDS]
    return _crontab(*values, str(timezone_name or "UTC"))


def crontab_never_fires(crontab, *, today: date | None = None) -> str:
    """Why a parsed crontab can never fire, or "" when some day has its month, day and weekday.

    Celery needs the month, the day of the month and the day of the week to match together.
    """
    months, days, weekdays = crontab.month_of_year, crontab.day_of_month, crontab.day_of_week
    longest = {m: calendar.monthrange(2000, m)[1] for m in months}  # 2000 has a 29 February
    pairs = [(m, d) for m in sorted(months) for d in sorted(days) if d <= longest[m]]
    if not pairs:
        return _NO_SUCH_DAY
    first = (today or date.today()).year
    for year in range(first, first + _CALENDAR_CYCLE_YEARS):
        for month, day in pairs:
            if day <= calendar.monthrange(year, month)[1] and \
                    date(year, month, day).isoweekday() % 7 in weekdays:
                return ""
    return "It can never fire: its days of the month never fall on its days of the week."


def _when(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    parsed = parse_datetime(str(value))
    if parsed is None:
        raise ValueError(f"Not a date and time: {value!r}.")
    return parsed


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def _stepper(schedule: dict[str, Any]):
    """(a function last run -> next run (UTC), the zone times are shown in, the crontab or None)."""
    kind = schedule.get("kind")
    if kind == "crontab":
        crontab = crontab_of(schedule, schedule.get("timezone") or "UTC")

        def after(last: datetime) -> datetime:
            start, delta, _now = crontab.remaining_delta(last)
            # remaining() answers in real (UTC) time; wall-clock arithmetic would be off by the
            # DST change it crosses.
            return _utc(start) + remaining(start, delta, now=start)

        return after, crontab.tz, crontab
    if kind == "interval":
        every = int(schedule.get("every") or 0)
        period = str(schedule.get("period") or "")
        if every < 1 or period not in _PERIOD_WORDS:
            raise ValueError("An interval needs a number of at least 1 and a period.")
        step = timedelta(**{period: every})
        return (lambda last: _utc(last) + step), app_zone(), None
    if kind == "solar":
        try:
            solar = SolarSchedule(event=schedule.get("event"), latitude=schedule.get("latitude"),
                                  longitude=schedule.get("longitude")).schedule
        except ImportError as exc:
            raise ValueError("Solar times need the ephem package, which is not installed where "
                             "the console runs (beat needs it too).") from exc
        except Exception as exc:
            raise ValueError(f"Not a valid solar schedule: {exc}.") from exc

        def after_solar(last: datetime) -> datetime:
            return _utc(last) + solar.remaining_estimate(_utc(last))

        return after_solar, app_zone(), None
    raise ValueError(f"Unknown schedule kind {kind!r}.")


def _change_instant(earlier: datetime, later: datetime, tz: tzinfo) -> datetime:
    """The first instant (to the second) in (earlier, later] with later's UTC offset in `tz`."""
    target = later.astimezone(tz).utcoffset()
    low, high = _utc(earlier), _utc(later)
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(tz).utcoffset() == target:
            high = middle
        else:
            low = middle
    return high.replace(microsecond=0)


def _clock_change(instant: datetime, tz: tzinfo, *, crontab: bool) -> ClockChange:
    before = (instant - timedelta(seconds=1)).astimezone(tz)
    after = instant.astimezone(tz)
    shift = after.utcoffset() - before.utcoffset()
    wall = instant.astimezone(timezone(before.utcoffset()))  # the wall clock as it read then
    hours = abs(shift.total_seconds()) / 3600
    amount = f"{hours:g} hour{'s' if hours != 1 else ''}"
    names = f"{before.tzname()} → {after.tzname()}"
    day = f"{wall:%a %d %b %Y} at {wall:%H:%M}"
    if shift > timedelta(0):
        text = (f"Clocks go forward {amount} on {day} ({names}): the times from {wall:%H:%M} "
                f"to {(wall + shift - timedelta(minutes=1)):%H:%M} do not exist that day.")
    else:
        text = (f"Clocks go back {amount} on {day} ({names}): the times from "
                f"{(wall + shift):%H:%M} to {(wall - timedelta(minutes=1)):%H:%M} happen twice.")
        if crontab:
            text += " Beat runs each of them once, at the first."
    return ClockChange(at=after, text=text)


def _time_note(at: datetime, crontab) -> str:
    """What is odd about a crontab time: moved out of a DST gap, or a wall time that happens twice."""
    if crontab is None:
        return ""
    local = at
    if local.hour not in crontab.hour or local.minute not in crontab.minute:
        earlier = (at - timedelta(days=1)).astimezone(at.tzinfo).utcoffset()
        wall = _utc(at).astimezone(timezone(earlier))
        return (f"{wall:%H:%M} does not exist that day (clocks go forward): beat runs it at "
                f"{local:%H:%M} {local.tzname()}.")
    other = local.replace(fold=1 - local.fold)
    if other.utcoffset() != local.utcoffset():
        return (f"{local:%H:%M} happens twice that day (clocks go back): beat runs it once, at "
                f"the first ({local.tzname()}).")
    return ""


def _time_text(at: datetime, seconds: bool) -> str:
    return f"{at:%a %d %b %Y %H:%M{':%S' if seconds else ''}} {at.tzname()}"


def preview(
    schedule: dict[str, Any],
    *,
    now: datetime,
    count: int = PREVIEW_COUNT,
    last_run_at: datetime | str | None = None,
    start_time: datetime | str | None = None,
    expires: datetime | str | None = None,
    one_off: bool = False,
    enabled: bool = True,
) -> Preview:
    """The next `count` times beat would send a task on `schedule` (a definition's schedule part).

    Follows django-celery-beat: crontabs step through wall-clock times in their own zone (a
    time that does not exist runs an hour later, one that happens twice runs once); intervals
    count real time from the last run; a task with a start time still ahead runs once that
    time has come, then on schedule; a one-off task runs once; nothing runs after `expires`.
    Never raises on bad input: the Preview's error says what is wrong.
    """
    now = _utc(now)
    kind = schedule.get("kind")
    notes: list[str] = []
    off_schedule = False  # the first time is the start time, not a time of the schedule
    try:
        last_run_at, start_time, expires = (_when(last_run_at), _when(start_time), _when(expires))
        if kind == "clocked":
            when = _when(schedule.get("clocked_time"))
            if when is None:
                raise ValueError("A clocked schedule needs a date and time.")
            tz, crontab = app_zone(), None
            if _utc(when) > now:
                times = [_utc(when)]
            else:
                times = [now]
                notes.append("Its time has passed: beat runs it as soon as it is enabled.")
            notes.append("Clocked: beat runs it once, then disables it.")
        else:
            after, tz, crontab = _stepper(schedule)
            from_start = start_time is not None and _utc(start_time) > now
            if from_start:
                first = _utc(start_time)
                if last_run_at is not None:
                    first = max(first, after(_utc(last_run_at)))
                notes.append("Beat runs it once its start time has come, then on its schedule.")
            elif kind == "interval":
                first = max(now, after(_utc(last_run_at or now)))
            else:
                first = after(now)
            times = [first]
            off_schedule = from_start and first == _utc(start_time)
            while len(times) < (1 if one_off else count):
                times.append(after(times[-1]))
            if one_off:
                notes.append("One-off: beat runs it once, then disables it.")
    except (ValueError, OverflowError, RuntimeError) as exc:
        # RuntimeError: celery gave up rolling a crontab over (a time it cannot reach).
        return Preview(timezone=str(schedule.get("timezone") or "UTC"), error=str(exc))
    if expires is not None:
        if any(t >= _utc(expires) for t in times):
            notes.append(f"It expires at {_time_text(_utc(expires).astimezone(tz), False)}: beat "
                         "disables it then.")
        times = [t for t in times if t < _utc(expires)]
    if not enabled:
        notes.insert(0, "Disabled: beat does not run it. These are the times once it is enabled.")
    local = [t.astimezone(tz) for t in times]
    seconds = any(t.second or t.microsecond for t in local)
    changes = [
        _clock_change(_change_instant(a, b, tz), tz, crontab=crontab is not None)
        for a, b in zip([now.astimezone(tz), *local], local)
        if a.utcoffset() != b.utcoffset()
    ]
    return Preview(
        timezone=str(tz),
        text=schedule_text(schedule),
        times=tuple(
            FireTime(at=t, text=_time_text(t, seconds),
                     note="" if (i == 0 and off_schedule) else _time_note(t, crontab))
            for i, t in enumerate(local)),
        clock_changes=tuple(changes),
        notes=tuple(notes),
    )


def _count_text(every: int, word: str) -> str:
    return f"every {word}" if every == 1 else f"every {every} {word}s"


@lru_cache(maxsize=2048)
def _cron_description(expression: str) -> str:
    options = Options()
    options.use_24hour_time_format = True
    options.day_of_week_start_index_zero = True
    try:
        return get_description(expression, options)
    except Exception:  # cron-descriptor's own errors on what celery accepts: show the expression
        return expression


def schedule_text(schedule: dict[str, Any]) -> str:
    """The schedule in words: "At 02:30, Monday through Friday", "every 30 seconds", ..."""
    kind = schedule.get("kind")
    if kind == "crontab":
        expression = " ".join(str(schedule.get(f) or "*") for f in CRONTAB_FIELDS)
        return _cron_description(expression)
    if kind == "interval":
        every = int(schedule.get("every") or 0)
        return _count_text(every, _PERIOD_WORDS.get(schedule.get("period"), str(schedule.get("period"))))
    if kind == "solar":
        event = dict(SOLAR_SCHEDULES).get(schedule.get("event"), schedule.get("event"))
        return f"at {str(event).lower()} at {schedule.get('latitude')}, {schedule.get('longitude')}"
    if kind == "clocked":
        when = _when(schedule.get("clocked_time"))
        if when is None:
            return "once"
        when = _utc(when).astimezone(app_zone())
        return f"once, at {when:%Y-%m-%d %H:%M} {when.tzname()}"
    return "no schedule"


def schedule_zone_name(schedule: dict[str, Any]) -> str:
    """The zone a schedule's times are read in: a crontab's own, otherwise beat's clock."""
    if schedule.get("kind") == "crontab":
        return str(schedule.get("timezone") or "UTC")
    return str(app_zone())
