"""Beat's health: when it last dispatched, whether it is alive, and schedules whose expected run did not happen."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Max, OuterRef, Subquery
from django.utils import timezone
from django_celery_beat.models import PeriodicTask
from django_celery_results.models import TaskResult

from taskops import cache
from taskops.beat_dispatch import dispatch_read
from taskops.conf import config
from taskops.models import QueueDepthSample
from taskops.schedules.beat import beat_anchor, beat_last_run
from taskops.schedules.definitions import SCHEDULE_KINDS

DEFAULT_GRACE_SECONDS = 60.0


@dataclass(frozen=True)
class LateSchedule:
    """A schedule whose expected run did not happen within the grace period."""

    name: str
    expected_at: datetime
    last_seen_at: datetime | None  # its last send (beat's record) or run (results), None if never
    missed: bool = False  # the run after the expected one is overdue too: at least one run was skipped

    @property
    def state(self) -> str:
        return "missed" if self.missed else "late"


@dataclass(frozen=True)
class BeatHealth:
    checked_at: datetime
    grace_seconds: float
    last_dispatch_at: datetime | None
    last_dispatch_name: str
    dispatch_recorded: bool  # beat's own record answered (else only runs the workers stored count)
    last_sample_at: datetime | None
    sampler_alive: bool | None  # None: the sampler is turned off (TASKOPS_SAMPLE_INTERVAL=0)
    enabled_schedules: int
    due_not_sent: bool  # schedules are due and beat has sent nothing since the first of them
    late: tuple[LateSchedule, ...] = ()
    unchecked: tuple[str, ...] = ()  # schedules whose runs cannot be computed here

    @property
    def ok(self) -> bool:
        return not self.late and self.sampler_alive is not False

    @property
    def sampler_age_seconds(self) -> float | None:
        """Seconds since the sampler's last sample, now (this reading may be older than that)."""
        return _seconds_since(self.last_sample_at)

    @property
    def dispatch_age_seconds(self) -> float | None:
        """Seconds since beat's last dispatch, now: the dashboard and /metrics say the same."""
        return _seconds_since(self.last_dispatch_at)

    def late_for(self, name: str) -> LateSchedule | None:
        """The late or missed run of the schedule `name`, or None (for flags in the schedule list)."""
        return next((s for s in self.late if s.name == name), None)


def _seconds_since(moment: datetime | None) -> float | None:
    return None if moment is None else max(0.0, (timezone.now() - moment).total_seconds())


def grace_seconds() -> float:
    return config.beat_grace_seconds


def _sampler_alive(last_sample_at: datetime | None, now: datetime) -> bool | None:
    interval = config.sample_interval
    if interval <= 0:
        return None
    return last_sample_at is not None and (now - last_sample_at).total_seconds() < interval * 3 + 5


def _fire_after(task: PeriodicTask, after: datetime, now: datetime) -> datetime | None:
    """The schedule's first fire time after `after`, as beat computes it (None for a clocked one)."""
    if task.clocked_id:
        return None
    schedule = task.schedule  # Celery's own schedule object: beat asks it the same question
    zone = getattr(schedule, "tz", None) or timezone.get_default_timezone()
    schedule.nowfun = lambda: now.astimezone(zone)
    return now + schedule.remaining_estimate(after.astimezone(zone))


def _latest(*times: datetime | None) -> datetime | None:
    return max((t for t in times if t is not None), default=None)


def _late(task: PeriodicTask, seen: datetime | None, now: datetime, grace: timedelta) -> LateSchedule | None:
    """The late (or missed) run of one enabled schedule, or None when it is on time."""
    if task.start_time is not None and task.start_time > now:
        return None  # beat does not start it before then
    if task.expires is not None and task.expires <= now:
        return None  # beat disables it instead of sending it
    if task.one_off and task.total_run_count > 0:
        return None  # sent once; beat disables it
    if task.clocked_id:
        expected = task.clocked.clocked_time
        if seen is not None and seen >= expected:
            return None
        following = None
    else:
        # As the preview: beat counts from the last run it knows (an edit keeps it, so a time
        # that passed meanwhile is sent at once), else from the last change (30 years back with
        # a start time); it cannot send before it sees the change, nor before the start time.
        last = beat_last_run(last_run_at=task.last_run_at, sent_at=seen, changed_at=task.date_changed)
        anchor = beat_anchor(last_run_at=last, changed_at=task.date_changed, start_time=task.start_time)
        due = _fire_after(task, anchor, now)
        if due is None:
            return None
        expected = max(t for t in (due, task.date_changed, task.start_time) if t is not None)
        following = _fire_after(task, expected, now)
    if now - expected <= grace:
        return None
    return LateSchedule(name=task.name, expected_at=expected, last_seen_at=seen,
                        missed=following is not None and now - following > grace)


def beat_health(*, now: datetime | None = None) -> BeatHealth:
    """Beat's health now: its last dispatch, its sampler, and every enabled schedule that is overdue.

    Two queries and one cache read, however many schedules there are.
    """
    now = now or timezone.now()
    grace = grace_seconds()
    last_run = (TaskResult.objects.filter(periodic_task_name=OuterRef("name"))
                .order_by("-date_done", "-id").values("date_created")[:1])
    tasks = list(PeriodicTask.objects.filter(enabled=True).select_related(*SCHEDULE_KINDS)
                 .annotate(last_result_at=Subquery(last_run)).order_by("name"))
    last_sample = QueueDepthSample.objects.aggregate(at=Max("sampled_at"))["at"]
    recorded_at, recorded_name, sent = dispatch_read([task.name for task in tasks])

    late: list[LateSchedule] = []
    unchecked: list[str] = []
    for task in tasks:
        seen = _latest(sent.get(task.name), task.last_result_at)
        try:
            found = _late(task, seen, now, timedelta(seconds=grace))
        except Exception:  # noqa: BLE001 - a stored schedule Celery cannot read (or solar without ephem)
            unchecked.append(task.name)
            continue
        if found is not None:
            late.append(found)

    ran = [(task.last_result_at, task.name) for task in tasks if task.last_result_at is not None]
    last_at, last_name = max([*ran, (recorded_at, recorded_name)] if recorded_at else ran,
                             default=(None, ""), key=lambda pair: pair[0])
    first_due = min((s.expected_at for s in late), default=None)
    return BeatHealth(
        checked_at=now,
        grace_seconds=grace,
        last_dispatch_at=last_at,
        last_dispatch_name=last_name,
        dispatch_recorded=recorded_at is not None,
        last_sample_at=last_sample,
        sampler_alive=_sampler_alive(last_sample, now),
        enabled_schedules=len(tasks),
        due_not_sent=first_due is not None and (last_at is None or last_at < first_due),
        late=tuple(sorted(late, key=lambda s: s.expected_at)),
        unchecked=tuple(unchecked),
    )


HEALTH_CACHE_KEY = "taskops:beat-health"
PUBLISHED_KEY = "taskops:beat-health:published"
# Without beat's published reading (beat down, or an older beat), viewers compute it themselves,
# as often as TASKOPS_LIVE_TTL while that is cheap and at most once per MAX_FALLBACK_TTL when it
# is not (with 10,000 schedules one computation takes seconds).
MAX_FALLBACK_TTL = 30.0
_last_cost = {"seconds": 0.0}


def beat_health_publish() -> BeatHealth:
    """Compute beat's health inside beat (its sampler thread) and share it with every viewer."""
    health = _timed_beat_health()
    period = beat_health_publish_period()
    cache.values_set({PUBLISHED_KEY: {"health": health, "interval": period}}, timeout=period * 3 + 5)
    return health


def beat_health_publish_period() -> float:
    """How often beat publishes its health: every sample, but spending at most a tenth of its time on it."""
    interval = config.sample_period
    return max(interval, _last_cost["seconds"] * 10)


def _timed_beat_health() -> BeatHealth:
    started = time.monotonic()
    try:
        return beat_health()
    finally:
        _last_cost["seconds"] = time.monotonic() - started


def beat_health_shared() -> BeatHealth:
    """Beat's health as beat last published it, else computed by one viewer for all of them."""
    published = cache.values_get([PUBLISHED_KEY]).get(PUBLISHED_KEY)
    if isinstance(published, dict) and isinstance(published.get("health"), BeatHealth):
        health, interval = published["health"], float(published.get("interval") or 10)
        # Beat publishes every interval: an older reading means beat stopped publishing.
        if (timezone.now() - health.checked_at).total_seconds() <= interval * 1.5 + 1:
            return health
    live_ttl = config.live_ttl
    ttl = min(MAX_FALLBACK_TTL, max(live_ttl, _last_cost["seconds"] * 20))
    return cache.shared_value(HEALTH_CACHE_KEY, ttl, _timed_beat_health)
