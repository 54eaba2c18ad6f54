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
from taskops.schedules.beat import (
    START_TIME_BACKDATE,
    BeatTiming,
    beat_anchor,
    beat_timing,
    crontab_load_hour,
    crontab_loaded,
    crontab_loaded_from,
)

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
    latest: datetime | None = None  # beat sends it between `at` and this (None: at `at`)


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
    if kind == "clocked":
        when = _when(schedule.get("clocked_time"))
        if when is None:
            raise ValueError("A clocked schedule needs a date and time.")
        clocked_at = _utc(when)
        return (lambda _last: clocked_at), app_zone(), None
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


def _when_text(at: datetime, tz: tzinfo) -> str:
    return _time_text(at.astimezone(tz), True)


@dataclass(frozen=True)
class _First:
    """The first send, and why it is not simply the schedule's next time."""

    at: datetime
    latest: datetime | None = None  # beat sends it between `at` and this
    on_schedule: bool = True  # a time of the schedule (not "at once", nor its start time)
    note: str = ""


def _first_check(base: datetime, *, load_hour: int | None, awaits_start: bool,
                 due_start: datetime | None, timing: BeatTiming) -> tuple[datetime, datetime]:
    """The earliest and latest moment at or after `base` when beat first asks whether it is due.

    Beat asks when it (re)reads a schedule (at once after a change) and then at the moment its
    last answer named. A crontab waiting for its start time names the crontab's first time
    after it, so beat asks at its next reread of the schedules or then, whichever comes first.
    A crontab it does not hold (one hour, far from it) is asked at the first reread that loads it.
    """
    if not crontab_loaded(load_hour, base):
        opens = crontab_loaded_from(load_hour, base)
        return opens, opens + timing.reload_delay
    if not awaits_start:
        return base, base
    latest = min(due_start, base + timing.reload_delay) if due_start else base + timing.reload_delay
    if not crontab_loaded(load_hour, latest):  # dropped before it was asked: the next window
        latest = crontab_loaded_from(load_hour, latest) + timing.reload_delay
    return base, latest


def _send_after_asking(asked: datetime, due: datetime, after, *, deadline: float | None) -> datetime:
    """When beat sends it, first asked at `asked` with the schedule due at `due`.

    Due by then: at once, unless beat_cron_starting_deadline finds no time of the crontab within
    the deadline (celery's crontab.is_due), then at its next time. Not due yet: when it is.
    """
    if due > asked:
        return due
    if deadline is not None and due < asked and \
            after(asked - timedelta(seconds=deadline, microseconds=1)) > asked:
        return after(asked)
    return asked


def _first_send(schedule: dict[str, Any], *, now: datetime, after, crontab, anchor: datetime,
                start_time: datetime | None, timing: BeatTiming, tz: tzinfo) -> _First:
    """Beat's first send of a schedule from `now` on (ModelEntry.is_due, then celery's is_due)."""
    awaits_start = start_time is not None and start_time > now
    base = start_time if awaits_start else now
    due = after(anchor)
    deadline = timing.cron_deadline if crontab is not None else None
    load_hour = (crontab_load_hour(str(schedule.get("hour") or "*").strip(),
                                   str(schedule.get("timezone") or "UTC"))
                 if crontab is not None else None)
    waits = awaits_start and crontab is not None  # beat asks again at the crontab's time after it
    if due > base and not waits:  # not due when beat first asks: it sends it at its time
        return _First(at=due)
    early, late = _first_check(base, load_hour=load_hour, awaits_start=waits,
                               due_start=after(base) if waits else None, timing=timing)
    at = _send_after_asking(early, due, after, deadline=deadline)
    latest = None
    if late > early:
        latest = _send_after_asking(late, due, after, deadline=deadline)
        if deadline is not None and due <= late:
            latest = max(latest, after(late))
        latest = latest if latest > at else None
    notes = []
    catching_up = due < early and at == early
    if catching_up and schedule.get("kind") in ("crontab", "interval", "solar") and not awaits_start:
        when = "at once" if at == now else "as soon as it looks at it"
        if anchor < now - START_TIME_BACKDATE / 2:
            notes.append("Its start time has passed and it has not run since its last change: "
                         f"beat sends it {when}.")
        else:
            notes.append(f"{when.capitalize()}: beat counts from {_when_text(anchor, tz)} (its last "
                         f"run, or its last change when it has not run since), so the run due at "
                         f"{_when_text(due, tz)} has not been sent yet.")
    elif due < early and deadline is not None and at != early:
        notes.append(f"The run due at {_when_text(due, tz)} is older than beat_cron_starting_deadline "
                     f"({deadline:g} s): beat skips it.")
    if due < early and not crontab_loaded(load_hour, base):
        notes.append("django-celery-beat holds a crontab with a single hour only from 2 hours before "
                     "that hour (UTC): beat does not look at it before "
                     f"{_when_text(crontab_loaded_from(load_hour, base), tz)}.")
    if latest is not None:
        notes.append(f"Beat sends it between {_when_text(at, tz)} and {_when_text(latest, tz)}: it "
                     f"rereads its schedules every {timing.reload:g} s.")
    return _First(at=at, latest=latest, on_schedule=not catching_up, note=" ".join(notes))


def preview(
    schedule: dict[str, Any],
    *,
    now: datetime,
    count: int = PREVIEW_COUNT,
    last_run_at: datetime | str | None = None,
    changed_at: datetime | str | None = None,
    start_time: datetime | str | None = None,
    expires: datetime | str | None = None,
    one_off: bool = False,
    enabled: bool = True,
    timing: BeatTiming | None = None,
) -> Preview:
    """The next `count` times beat would send a task on `schedule` (a definition's schedule part).

    What django-celery-beat's DatabaseScheduler does, with Celery's own schedule code:
    - beat counts from the schedule's last run (`last_run_at`, see schedules.beat.beat_last_run),
      else from its last change (`changed_at`; None: now, the preview of a change about to be
      saved), 30 years before that with a start time. A time of the schedule that passed since
      then is sent at once (on beat's next tick, within seconds), not skipped, unless
      beat_cron_starting_deadline skips it; each later time counts from the send before;
    - crontabs step through wall-clock times in their own zone (a time that does not exist runs an
      hour later, one that happens twice runs once); intervals count real time;
    - with a start time ahead nothing runs before it, then what is due is sent (a crontab's at
      beat's next reread of the schedules, every 5 minutes); a crontab with a single hour is
      loaded only from 2 hours before that hour, so a run it missed is sent once it is loaded;
    - a one-off task runs once; nothing runs at or after `expires`; a clocked time runs once.
    A disabled schedule is previewed as if enabled now (disabling forgets its last run).
    Never raises on bad input: the Preview's error says what is wrong.
    """
    now = _utc(now)
    timing = timing or beat_timing()
    kind = schedule.get("kind")
    notes: list[str] = []
    try:
        last_run_at, changed_at, start_time, expires = (
            _when(last_run_at), _when(changed_at), _when(start_time), _when(expires))
        if not enabled:  # enabling it is a change, and disabling forgot its last run
            last_run_at, changed_at = None, None
        start_time = _utc(start_time) if start_time is not None else None
        anchor = beat_anchor(last_run_at=_utc(last_run_at) if last_run_at is not None else None,
                             changed_at=_utc(changed_at) if changed_at is not None else now,
                             start_time=start_time)
        after, tz, crontab = _stepper(schedule)
        first = _first_send(schedule, now=now, after=after, crontab=crontab, anchor=anchor,
                            start_time=start_time, timing=timing, tz=tz)
        if kind == "clocked":
            if after(now) <= now:
                notes.append("Its time has passed: beat runs it as soon as it is enabled.")
            notes.append("Clocked: beat runs it once, then disables it.")
        if start_time is not None and start_time > now:
            notes.append("Beat runs it once its start time has come, then on its schedule.")
        times = [first.at]
        while len(times) < (1 if one_off or kind == "clocked" else count):
            times.append(after(times[-1]))
        if one_off and kind != "clocked":
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

    def note(i: int, at: datetime) -> str:
        if i > 0:
            return _time_note(at, crontab)
        on_schedule = first.on_schedule and not (start_time is not None and first.at == start_time)
        return " ".join(filter(None, [first.note, _time_note(at, crontab) if on_schedule else ""]))

    return Preview(
        timezone=str(tz),
        text=schedule_text(schedule),
        times=tuple(
            FireTime(at=t, text=_time_text(t, seconds), note=note(i, t),
                     latest=first.latest.astimezone(tz) if i == 0 and first.latest else None)
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
