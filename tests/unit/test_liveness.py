"""The worker state machine, the stranded-message rule and the idle-queue rule (taskops.liveness)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from taskops.liveness import (
    HELD,
    NOT_ANSWERING,
    OFFLINE,
    ONLINE,
    STARTING,
    STOPPING,
    STRANDED,
    UNCONFIRMED,
    UNKNOWN,
    WorkerFacts,
    in_flight_kind,
    queue_idle,
    worker_state,
)

NOW = datetime(2026, 3, 29, 12, 0, tzinfo=timezone.utc)
GRACE, OFFLINE_AFTER = 30.0, 120.0


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


def state_of(**facts) -> tuple[str, float | None]:
    found = worker_state(WorkerFacts(**facts), now=NOW, start_grace=GRACE, offline_after=OFFLINE_AFTER)
    return found.state, found.seconds


# (facts, expected state, expected seconds in it)
CASES = [
    # A worker that answers is online, for as long as it reports being up.
    (dict(answered=True, uptime_seconds=300, started_at=ago(301)), ONLINE, 300),
    (dict(answered=True, started_at=ago(40)), ONLINE, 40),
    # ... even if an older incarnation said goodbye.
    (dict(answered=True, uptime_seconds=5, goodbye_at=ago(60)), ONLINE, 5),
    # Just started, not answering yet (a worker answers 2-4 s after it says it started): starting,
    # not "not answering" and no banner.
    (dict(answered=False, started_at=ago(3)), STARTING, 3),
    (dict(answered=False, started_at=ago(3), last_answered_at=ago(900)), STARTING, 3),
    # Still silent after the start grace: not answering.
    (dict(answered=False, started_at=ago(45)), NOT_ANSWERING, 45),
    # It said it is ready (it consumes and answers from then on) and did not answer: frozen
    # right after its start, not starting.
    (dict(answered=False, started_at=ago(5), ready_at=ago(2)), NOT_ANSWERING, 2),
    (dict(answered=False, started_at=ago(500), ready_at=ago(130)), OFFLINE, 130),
    (dict(answered=False, started_at=ago(3), ready_at=ago(60)), STARTING, 3),  # an older start's
    # It answered since it started and then went quiet (SIGSTOP, a blocked main thread):
    # not answering, since its last answer, for up to TASKOPS_WORKER_OFFLINE_AFTER_SECONDS.
    (dict(answered=False, started_at=ago(600), last_answered_at=ago(11)), NOT_ANSWERING, 11),
    (dict(answered=False, started_at=ago(600), last_answered_at=ago(119)), NOT_ANSWERING, 119),
    (dict(answered=False, started_at=ago(2), last_answered_at=ago(1)), NOT_ANSWERING, 1),
    # Silent longer than that, without a goodbye (SIGKILL, lost host): offline, since its last answer.
    (dict(answered=False, started_at=ago(600), last_answered_at=ago(121)), OFFLINE, 121),
    (dict(answered=False, started_at=ago(200)), OFFLINE, 200),
    (dict(answered=False), OFFLINE, None),
    # Ctrl-C: it said it began a warm shutdown; it finishes its tasks and answers nobody meanwhile.
    (dict(answered=False, started_at=ago(600), last_answered_at=ago(8), stopping_since=ago(6)),
     STOPPING, 6),
    # A stopping worker that never says goodbye (killed during its shutdown) goes offline in time.
    (dict(answered=False, started_at=ago(600), last_answered_at=ago(200), stopping_since=ago(130)),
     OFFLINE, 130),
    # It said goodbye: offline at once, since then.
    (dict(answered=False, started_at=ago(600), last_answered_at=ago(3), stopping_since=ago(2),
          goodbye_at=ago(1)), OFFLINE, 1),
    (dict(answered=None, started_at=ago(600), goodbye_at=ago(50)), OFFLINE, 50),
    # What an older incarnation said does not count once it started again.
    (dict(answered=False, started_at=ago(2), goodbye_at=ago(60), stopping_since=ago(65)), STARTING, 2),
    # The broker does not answer: unknown, since its last answer.
    (dict(answered=None, started_at=ago(600), last_answered_at=ago(4)), UNKNOWN, 4),
]


@pytest.mark.parametrize(("facts", "state", "seconds"), CASES)
def test_each_state_is_named_with_how_long(facts, state, seconds):
    assert state_of(**facts) == (state, seconds)


def test_the_words_say_why_and_name_the_timings():
    frozen = worker_state(WorkerFacts(answered=False, started_at=ago(600), last_answered_at=ago(11)),
                          now=NOW, start_grace=GRACE, offline_after=OFFLINE_AFTER)
    assert "busy or frozen" in frozen.reason and "120 s" in frozen.reason
    killed = worker_state(WorkerFacts(answered=False, last_answered_at=ago(500)), now=NOW,
                          start_grace=GRACE, offline_after=OFFLINE_AFTER)
    assert "without saying goodbye" in killed.reason
    gone = worker_state(WorkerFacts(answered=False, goodbye_at=ago(5)), now=NOW)
    assert "said goodbye" in gone.reason
    assert gone.since == ago(5)


def test_only_workers_that_may_be_alive_may_hold_unreported_messages():
    def holds(**facts) -> bool:
        return worker_state(WorkerFacts(**facts), now=NOW, start_grace=GRACE,
                            offline_after=OFFLINE_AFTER).may_hold_unreported

    assert holds(answered=False, started_at=ago(600), last_answered_at=ago(11))  # not answering
    assert holds(answered=False, started_at=ago(600), stopping_since=ago(5))  # stopping
    assert holds(answered=False, started_at=ago(2))  # starting
    assert not holds(answered=True, uptime_seconds=1)  # it reported what it holds
    assert not holds(answered=False, goodbye_at=ago(1))
    assert not holds(answered=False, last_answered_at=ago(500))


def test_settings_give_the_timings(settings):
    settings.TASKOPS_WORKER_OFFLINE_AFTER_SECONDS = 10
    settings.TASKOPS_WORKER_START_GRACE_SECONDS = 1
    assert worker_state(WorkerFacts(answered=False, last_answered_at=ago(11)), now=NOW).state == OFFLINE
    assert worker_state(WorkerFacts(answered=False, started_at=ago(2)), now=NOW).state == NOT_ANSWERING


READ = NOW - timedelta(seconds=1)


def kind(task_id="t1", queue="q", taken_at=ago(60), held=(), silent=()) -> str:
    return in_flight_kind(task_id, queue, taken_at, held_ids=frozenset(held),
                          silent_queues=list(silent), read_started=READ)


def test_a_message_an_answering_worker_reports_is_held():
    assert kind(held={"t1"}) == HELD
    assert kind(held={"t1"}, silent=[("q",)]) == HELD


def test_a_message_no_worker_may_hold_is_stranded():
    assert kind() == STRANDED
    assert kind(held={"other"}) == STRANDED
    assert kind(silent=[("other-queue",)]) == STRANDED  # a silent worker of another queue
    assert kind(taken_at=None) == STRANDED


def test_a_message_a_silent_worker_may_hold_or_just_taken_is_unconfirmed():
    assert kind(silent=[("q", "other")]) == UNCONFIRMED
    assert kind(silent=[()]) == UNCONFIRMED  # a silent worker whose queues are unknown
    assert kind(taken_at=READ - timedelta(seconds=2)) == UNCONFIRMED  # taken as the reading began
    assert kind(taken_at=READ + timedelta(seconds=2)) == UNCONFIRMED  # after it (or a clock ahead)
    assert kind(task_id="", held={""}) == STRANDED  # no id: nobody can report it


def idle(**changes) -> bool:
    values = dict(consumers=0, paused=False, waiting=0, in_flight=0, first_seen_at=ago(90000),
                  last_consumed_at=None, now=NOW, idle_hours=24)
    return queue_idle(**{**values, **changes})


def test_a_queue_nobody_consumed_for_the_idle_period_is_idle():
    assert idle()
    assert idle(last_consumed_at=ago(86401))


def test_a_queue_with_a_consumer_messages_a_pause_or_recent_use_is_not_idle():
    assert not idle(consumers=1)
    assert not idle(paused=True)
    assert not idle(waiting=3)
    assert not idle(waiting=None)  # the broker did not answer: nothing is known
    assert not idle(in_flight=1)
    assert not idle(last_consumed_at=ago(3600))
    assert not idle(first_seen_at=ago(3600))  # seen for an hour only
    assert not idle(first_seen_at=None)  # beat's sampler never saw it
