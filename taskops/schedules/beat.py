"""What django-celery-beat's DatabaseScheduler does around a schedule: the last run it counts from, when it loads a crontab, how often it looks."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from datetime import datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo

from django.conf import settings
from django_celery_beat.schedulers import DEFAULT_MAX_INTERVAL, SCHEDULE_SYNC_MAX_INTERVAL

from taskops.conf import celery_app

# ModelEntry: a schedule with a start time and no last run counts from 30 years before its
# last change, so it is due as soon as its start time has passed.
START_TIME_BACKDATE = timedelta(days=365 * 30)
# DatabaseScheduler loads a crontab whose hour is one number only near that hour (below).
_NUMERIC_HOURS = frozenset([str(hour) for hour in range(24)] + [f"{hour:02d}" for hour in range(10)])
_LOAD_WINDOW_HOURS = range(-2, 3)
_ALWAYS_LOADED_HOUR = 4  # celery.backend_cleanup's hour: django-celery-beat always loads it
_OFFSET_DAY = datetime(2023, 1, 1, 12)  # the fixed day django-celery-beat takes zone offsets on


@dataclass(frozen=True)
class BeatTiming:
    """How often beat looks at its schedules, and whether it skips stale crontab runs."""

    tick: float  # beat wakes at least this often (beat_max_loop_interval, 5 s for the database scheduler)
    reload: float  # and rereads every schedule at least this often (and at once after a change)
    cron_deadline: float | None  # beat_cron_starting_deadline: older missed crontab runs are skipped

    @property
    def reload_delay(self) -> timedelta:
        """The longest beat takes to reread its schedules (a reload is noticed on a tick)."""
        return timedelta(seconds=self.reload + self.tick)


def beat_timing() -> BeatTiming:
    """The timing of the beat that runs the console's Celery app (its configuration)."""
    conf = celery_app().conf
    deadline = conf.beat_cron_starting_deadline
    return BeatTiming(tick=float(conf.beat_max_loop_interval or DEFAULT_MAX_INTERVAL),
                      reload=float(SCHEDULE_SYNC_MAX_INTERVAL),
                      cron_deadline=float(deadline) if deadline is not None else None)


def beat_last_run(*, last_run_at: datetime | None, sent_at: datetime | None,
                  changed_at: datetime | None) -> datetime | None:
    """The last run beat counts a stored schedule's next run from; None when it has none since its last change.

    Beat writes a send to last_run_at only when it syncs (every few minutes, and before it rereads
    changed schedules), so its own record of the send (`sent_at`, taskops.beat_dispatch) is newer.
    Disabling a schedule empties last_run_at: a send recorded before the last change of a schedule
    without one was made before that reset.
    """
    if sent_at is not None and last_run_at is None and changed_at is not None and sent_at < changed_at:
        sent_at = None
    known = [t for t in (last_run_at, sent_at) if t is not None]
    return max(known) if known else None


def beat_anchor(*, last_run_at: datetime | None, changed_at: datetime,
                start_time: datetime | None) -> datetime:
    """The time beat counts the next run from (ModelEntry's last_run_at).

    The last run; without one the last change (the moment a schedule is created, edited or
    enabled through its save()), 30 years earlier when it has a start time.
    """
    if last_run_at is not None:
        return last_run_at
    return changed_at - START_TIME_BACKDATE if start_time is not None else changed_at


def _server_zone() -> tzinfo:
    """The clock django-celery-beat picks crontabs by (its aware_now()): UTC, or TIME_ZONE without USE_TZ."""
    return timezone.utc if settings.USE_TZ else ZoneInfo(settings.TIME_ZONE)


@lru_cache(maxsize=2048)
def crontab_load_hour(hour: str, timezone_name: str) -> int | None:
    """The server hour DatabaseScheduler files a crontab under; None when it always loads it.

    Only a crontab whose hour is one number (such as "9") is filed: that hour moved by its zone's
    offset on 1 January 2023 in whole hours, as DatabaseScheduler._get_crontab_exclude_query does.
    """
    if hour not in _NUMERIC_HOURS:
        return None
    fixed_server = _OFFSET_DAY.replace(tzinfo=_server_zone()).utcoffset()
    fixed_zone = _OFFSET_DAY.replace(tzinfo=ZoneInfo(timezone_name)).utcoffset()
    offset = int((fixed_server.total_seconds() - fixed_zone.total_seconds()) / 3600)
    return (int(hour) + offset + 24) % 24


def crontab_loaded(load_hour: int | None, at: datetime) -> bool:
    """Whether DatabaseScheduler holds a crontab filed under `load_hour` when it rereads its schedules at `at`.

    It loads such a crontab only from 2 hours before to 2 hours after that hour (and always one
    filed under 4, celery's cleanup hour).
    """
    if load_hour is None or load_hour == _ALWAYS_LOADED_HOUR:
        return True
    hour = at.astimezone(_server_zone()).hour
    return any((hour + shift) % 24 == load_hour for shift in _LOAD_WINDOW_HOURS)


def crontab_loaded_from(load_hour: int | None, at: datetime) -> datetime:
    """The first moment at or after `at` from which DatabaseScheduler holds the crontab."""
    if crontab_loaded(load_hour, at):
        return at
    # Hours start on a quarter hour of UTC in every zone: step through those.
    moment = at.astimezone(timezone.utc)
    moment = moment.replace(minute=moment.minute - moment.minute % 15, second=0, microsecond=0)
    for _ in range(4 * 25):
        moment += timedelta(minutes=15)
        if crontab_loaded(load_hour, moment):
            return moment
    raise ValueError("beat never loads this crontab")  # not reached: the window is 5 hours a day
