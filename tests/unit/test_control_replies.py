"""The control adapter's reading of worker replies, without a broker: flattening, errors, stats, tasks."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from taskops import control
from taskops.control import CommandResult, TaskInfo, WorkerStats


@pytest.fixture
def replies(monkeypatch):
    """Make the next broadcasts answer with the given raw replies (Celery's list of {worker: answer})."""
    sent: list[dict] = []

    def answer(raw: list[dict] | dict[str, list[dict]]):
        """`raw`: the replies to any command, or {command: replies} (others get no reply)."""
        def broadcast(command, arguments, *, destination, awaited, timeout):
            sent.append({"command": command, "arguments": arguments, "destination": destination,
                         "awaited": awaited, "timeout": timeout})
            return raw.get(command, []) if isinstance(raw, dict) else raw
        monkeypatch.setattr(control, "_broadcast", broadcast)
        return sent

    return answer


def test_ok_error_and_bare_answers_are_told_apart_and_silent_workers_are_missing(replies):
    sent = replies([{"a@h": {"ok": "pool will grow"}}, {"b@h": {"error": "unknown task"}},
                    {"c@h": "pong-ish"}])

    result = control.pool_grow(1, destination=["a@h", "b@h", "c@h", "d@h"])

    assert result == CommandResult(command="pool_grow", replies={"a@h": "pool will grow", "c@h": "pong-ish"},
                                   errors={"b@h": "unknown task"}, missing=("d@h",))
    assert result.answered == ("a@h", "b@h", "c@h") and not result.ok
    assert sent == [{"command": "pool_grow", "arguments": {"n": 1}, "destination": ["a@h", "b@h", "c@h", "d@h"],
                     "awaited": ["a@h", "b@h", "c@h", "d@h"], "timeout": None}]


def test_a_command_is_ok_only_when_every_expected_worker_answered_without_error():
    assert CommandResult("x", {"a": "ok"}, {}, ()).ok
    assert not CommandResult("x", {}, {}, ()).ok  # nobody answered is not success
    assert not CommandResult("x", {"a": "ok"}, {"b": "no"}, ()).ok
    assert not CommandResult("x", {"a": "ok"}, {}, ("b",)).ok


def test_revoke_goes_to_every_worker_and_waits_for_the_expected_ones(replies):
    sent = replies([{"a@h": {"ok": "tasks {'t1'} flagged as revoked"}}])

    result = control.revoke(["t1"], terminate=True, signal="SIGKILL", expected=["a@h", "b@h"])

    assert (result.replies, result.missing) == ({"a@h": "tasks {'t1'} flagged as revoked"}, ("b@h",))
    assert sent[0]["destination"] is None and sent[0]["awaited"] == ["a@h", "b@h"]
    assert sent[0]["arguments"] == {"task_id": ["t1"], "terminate": True, "signal": "SIGKILL"}


def test_no_reply_at_all_is_an_empty_result_not_an_error(replies):
    replies([])

    result = control.rate_limit("t", "", destination=None)

    assert result == CommandResult("rate_limit", {}, {}, ())
    assert control.worker_ping() == [] and control.worker_discover() == []


def test_pings_are_read_per_worker_sorted_and_only_pong_is_ok(replies):
    replies([{"b@h": {"ok": "pong"}}, {"a@h": {"ok": "pong"}, "c@h": {"error": "x"}}])

    assert control.worker_ping() == [control.WorkerPing("a@h", True), control.WorkerPing("b@h", True),
                                     control.WorkerPing("c@h", False)]


STATS = {
    "pid": 4242, "uptime": 17, "prefetch_count": 8,
    "pool": {"implementation": "celery.concurrency.prefork:TaskPool", "max-concurrency": 2,
             "processes": [11, 12]},
    "total": {"demo.tasks.flaky_call": 3, "demo.tasks.generate_report": 2},
    "broker": {"transport": "redis", "hostname": "secret-host", "password": "hunter2"},
    "autoscaler": {"max": 4, "min": 1},
}


def test_stats_keep_what_the_console_shows_and_drop_the_broker_details(replies):
    replies([{"a@h": STATS}, {"b@h": {}}])

    stats = control.worker_stats(destination=["a@h", "b@h"])

    assert stats["a@h"] == WorkerStats(
        name="a@h", pid=4242, pool_implementation="TaskPool", pool_max_concurrency=2,
        pool_processes=(11, 12), prefetch_count=8, uptime_seconds=17,
        total_tasks={"demo.tasks.flaky_call": 3, "demo.tasks.generate_report": 2},
        autoscaler={"max": 4, "min": 1}, broker_transport="redis")
    assert stats["a@h"].tasks_started == 5
    assert "hunter2" not in repr(stats) and "secret-host" not in repr(stats)
    assert stats["b@h"] == WorkerStats(name="b@h", pid=None, pool_implementation="",
                                       pool_max_concurrency=None, pool_processes=(),
                                       prefetch_count=None, uptime_seconds=None)


def test_registered_entries_are_split_into_names_and_attributes():
    parsed = control._registered_by_worker({"a@h": [
        "demo.tasks.generate_report [rate_limit=10/m]", "demo.tasks.flaky_call",
        "demo.tasks.odd [rate_limit=1/s queue=x]"], "b@h": None})

    assert parsed == {"a@h": {"demo.tasks.flaky_call": {},
                              "demo.tasks.generate_report": {"rate_limit": "10/m"},
                              "demo.tasks.odd": {"rate_limit": "1/s", "queue": "x"}},
                      "b@h": {}}


def test_active_and_scheduled_tasks_become_task_infos_with_bounded_reprs():
    """Running tasks are asked with safe=True (the sender's reprs, shown cut); waiting ones come
    with their real values, which the console does not show (the sender may have masked them)."""
    started = 1_780_000_000.5
    active = {"id": "t1", "name": "demo.tasks.slow_task", "args": "['" + "x" * 5000 + "']",
              "kwargs": "{'k': 1}",
              "time_start": started, "acknowledged": True, "worker_pid": 99,
              "delivery_info": {"routing_key": "reports", "priority": 3}}
    scheduled = {"eta": "2026-01-01T00:00:00+00:00", "priority": 6,
                 "request": {"id": "t2", "type": "demo.tasks.generate_report", "args": [], "kwargs": {}}}

    running = control._tasks_by_worker({"a@h": [active], "b@h": None})
    waiting = control._tasks_by_worker({"a@h": [scheduled]}, scheduled=True)

    info = running["a@h"][0]
    assert (info.id, info.name, info.queue, info.priority, info.pid, info.acknowledged) == (
        "t1", "demo.tasks.slow_task", "reports", 3, 99, True)
    assert info.started_at == datetime.fromtimestamp(started, tz=timezone.utc)
    assert len(info.args) == 1000 and info.args.startswith("['xxx")  # cut, never whole
    assert info.kwargs == "{'k': 1}"
    assert running["b@h"] == ()
    assert waiting["a@h"] == (TaskInfo(id="t2", name="demo.tasks.generate_report",
                                       args=control.ARGUMENTS_NOT_SHOWN, kwargs="", worker="a@h",
                                       eta="2026-01-01T00:00:00+00:00", priority=6),)


def test_snapshots_of_silent_workers_have_no_stats(replies):
    replies({"stats": [{"a@h": STATS}], "active_queues": [{"a@h": [{"name": "reports"}]}],
             "scheduled": [{"a@h": []}], "reserved": [{"a@h": []}], "active": [{"a@h": []}]})

    snapshots = control.worker_snapshots(["a@h", "z@h"])

    assert snapshots["a@h"].answered and not snapshots["z@h"].answered
    assert snapshots["a@h"].queues == ("reports",) and snapshots["a@h"].stats.pid == 4242
    assert snapshots["z@h"].active == () and snapshots["z@h"].registered is None
    assert control.worker_snapshots([]) == {} and control.worker_registered([]) == {}


def test_without_named_workers_a_call_waits_its_whole_timeout_and_with_them_only_for_them(replies):
    sent = replies([])

    control.worker_discover(timeout=0.3)
    control.worker_ping(destination=["a@h", "b@h"])

    assert [(s["awaited"], s["timeout"]) for s in sent] == [(None, 0.3), (["a@h", "b@h"], None)]
    assert control._timeout(None) == 1.0 and control._timeout(0.3) == 0.3


def test_what_workers_hold_is_asked_eta_then_prefetched_then_running_of_those_that_answered(replies):
    """A task moves from ETA to prefetched to running: asked in that order, one after the other, a
    task that moves on between two answers is in one of them. A worker that misses one of these
    questions did not answer (what it holds is not known)."""
    task = {"id": "t9", "name": "demo.tasks.slow_task", "args": "[]", "kwargs": "{}"}
    sent = replies({"stats": [{"a@h": STATS}, {"b@h": STATS}], "active_queues": [{"a@h": []}, {"b@h": []}],
                    "scheduled": [{"a@h": []}, {"b@h": []}], "reserved": [{"a@h": [task]}],
                    "active": [{"a@h": [{**task, "id": "t8"}]}]})

    snapshots = control.worker_snapshots(["a@h", "b@h", "z@h"])

    order = [call["command"] for call in sent]
    assert set(order[:3]) == {"stats", "active_queues", "scheduled"} and order[3:] == ["reserved", "active"]
    assert sent[3]["destination"] == ["a@h", "b@h"]  # only those that answered so far
    assert sent[4]["destination"] == ["a@h"] and sent[4]["arguments"] == {"safe": True}
    assert snapshots["a@h"].held_ids == {"t8", "t9"}
    assert not snapshots["b@h"].answered and snapshots["b@h"].held_ids == frozenset()
    assert not snapshots["z@h"].answered
