"""The rules that name a worker's state, a stranded in-flight message and an idle queue, from what the console knows."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from taskops.conf import config

STARTING = "starting"
ONLINE = "online"
NOT_ANSWERING = "not answering"
STOPPING = "stopping"
OFFLINE = "offline"
UNKNOWN = "unknown"
# States of a worker that may hold messages it has not reported to the console.
MAY_HOLD_UNREPORTED = frozenset({STARTING, NOT_ANSWERING, STOPPING, UNKNOWN})

# What an in-flight (taken, unacknowledged) message is.
HELD = "held"  # a worker that answered reports it (running, prefetched or waiting for its ETA)
UNCONFIRMED = "unconfirmed"  # no answering worker reports it, but one that did not answer may hold it
STRANDED = "stranded"  # no worker holds it: it waits for the broker's visibility timeout
# A message taken this shortly before a reading began may not be in its worker's report yet; the
# broker stamps it with the worker's clock, which may also be a little ahead of the console's.
JUST_TAKEN = timedelta(seconds=5)


@dataclass(frozen=True)
class WorkerFacts:
    """What the console knows of one worker: this reading's answer, and what the worker said before."""

    answered: bool | None  # answered this reading; None: unknown (the broker did not answer)
    uptime_seconds: float | None = None  # as the worker reported it (when it answered)
    started_at: datetime | None = None  # it said it started
    ready_at: datetime | None = None  # it said it is ready: it consumes and answers from then on
    last_answered_at: datetime | None = None  # it last answered the console or beat's sampler
    stopping_since: datetime | None = None  # it said it began a warm shutdown
    goodbye_at: datetime | None = None  # it said goodbye


@dataclass(frozen=True)
class WorkerState:
    """A worker's state, since when (and how long that was at the reading), and why, in words."""

    state: str
    since: datetime | None
    seconds: float | None
    reason: str

    @property
    def may_hold_unreported(self) -> bool:
        """True when the worker may hold messages it did not report (it did not answer, yet may live)."""
        return self.state in MAY_HOLD_UNREPORTED


def _latest(*moments: datetime | None) -> datetime | None:
    return max((m for m in moments if m is not None), default=None)


def worker_state(facts: WorkerFacts, *, now: datetime, start_grace: float | None = None,
                 offline_after: float | None = None) -> WorkerState:
    """Name the state of a worker from `facts` at `now`.

    online: it answered. offline: it said goodbye since it last started, or it has been silent
    (no answer, no word) for more than `offline_after` seconds (TASKOPS_WORKER_OFFLINE_AFTER_SECONDS).
    stopping: it said it began a warm shutdown and is finishing its running tasks. starting: it
    said it started less than `start_grace` seconds ago (TASKOPS_WORKER_START_GRACE_SECONDS) and
    has neither said it is ready nor answered since. not answering: busy or frozen, silent for
    less than `offline_after` since its last answer (or since it said it was ready).
    unknown: the broker did not answer, and the worker did not say goodbye.
    """
    start_grace = config.worker_start_grace_seconds if start_grace is None else start_grace
    offline_after = config.worker_offline_after_seconds if offline_after is None else offline_after
    started = facts.started_at

    def since_start(moment: datetime | None) -> bool:
        """True for something the worker said or did since it last started."""
        return moment is not None and (started is None or moment >= started)

    def state(name: str, since: datetime | None, reason: str) -> WorkerState:
        seconds = max(0.0, (now - since).total_seconds()) if since is not None else None
        return WorkerState(name, since, seconds, reason)

    if facts.answered:
        up = (now - timedelta(seconds=facts.uptime_seconds) if facts.uptime_seconds is not None
              else started)
        return state(ONLINE, up, "it answers the console")
    if since_start(facts.goodbye_at):
        return state(OFFLINE, facts.goodbye_at, "it shut down: it said goodbye")
    if facts.answered is None:
        return state(UNKNOWN, facts.last_answered_at,
                     "the broker is not answering, so the worker cannot be asked")
    stopping = facts.stopping_since if since_start(facts.stopping_since) else None
    ready = facts.ready_at if since_start(facts.ready_at) else None
    heard = _latest(facts.last_answered_at, started, ready, stopping)
    if heard is None or (now - heard).total_seconds() > offline_after:
        return state(OFFLINE, heard, f"silent for more than {offline_after:g} s without saying "
                                     "goodbye: killed, frozen or unreachable")
    if stopping is not None:
        return state(STOPPING, stopping, "warm shutdown: it takes no new tasks and finishes its "
                                         "running ones; it has not said goodbye yet")
    answered_since_start = (started is not None and facts.last_answered_at is not None
                            and facts.last_answered_at > started)
    if (started is not None and ready is None and not answered_since_start
            and (now - started).total_seconds() <= start_grace):
        return state(STARTING, started, f"it said it started and is not ready yet; a worker answers "
                                        f"once it consumes (counted as starting for {start_grace:g} s)")
    return state(NOT_ANSWERING, _latest(facts.last_answered_at, ready, started),
                 f"busy or frozen: it did not answer in time; after {offline_after:g} s of silence "
                 "it counts as offline")


def in_flight_kind(task_id: str, queue: str, taken_at: datetime | None, *, held_ids: frozenset[str],
                   silent_queues: Iterable[tuple[str, ...]], read_started: datetime) -> str:
    """HELD, UNCONFIRMED or STRANDED: who holds a message taken from `queue` and not acknowledged.

    `held_ids`: the task ids the answering workers reported (active, reserved, scheduled), asked
    before the broker was read, scheduled first and active last, so a task moving on between
    two answers is seen in one of them. `silent_queues`: the queues of each worker that may hold
    messages without having answered (starting, not answering, stopping; () when unknown).
    A message none of them may hold, taken before the reading began, is stranded.
    """
    if task_id and task_id in held_ids:
        return HELD
    if taken_at is not None and taken_at > read_started - JUST_TAKEN:
        return UNCONFIRMED
    if any(not queues or queue in queues for queues in silent_queues):
        return UNCONFIRMED
    return STRANDED


def queue_idle(*, consumers: int, paused: bool, waiting: int | None, in_flight: int | None,
               first_seen_at: datetime | None, last_consumed_at: datetime | None, now: datetime,
               idle_hours: float | None = None) -> bool:
    """True for a queue with no consumer, nothing waiting or in flight, not paused, that no worker
    consumed for `idle_hours` (TASKOPS_QUEUE_IDLE_HOURS) since beat's sampler first saw it."""
    idle_hours = config.queue_idle_hours if idle_hours is None else idle_hours
    if consumers or paused or waiting != 0 or in_flight:
        return False
    reference = last_consumed_at or first_seen_at
    return reference is not None and now - reference > timedelta(hours=idle_hours)
