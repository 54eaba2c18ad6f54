"""Queue and worker control through the console's services, against live workers on Redis, and on
RabbitMQ too for the tests that matter per broker (`on_both_brokers`)."""

from __future__ import annotations

from pathlib import Path

import pytest
from django_celery_results.models import TaskResult

from taskops import broker, control
from taskops.models import AuditEntry, PendingRevoke, QueuePause, WorkerSeen
from taskops.services import (
    ActionRefused,
    queue_pause,
    queue_purge,
    queue_resume,
    task_revoke,
    worker_pool_resize,
    worker_rate_limit,
)
from tests.support.tasks import send, unique
from tests.support.poll import poll_until
from tests.support.rabbitmq import on_both_brokers

pytestmark = pytest.mark.django_db(transaction=True)

REPORT = "demo.tasks.generate_report"




def state_of(task_id: str) -> str | None:
    return TaskResult.objects.filter(task_id=task_id).values_list("status", flat=True).first()


def report_file(worker, name: str) -> list[Path]:
    """The files report `name` wrote where `worker` keeps its media (its TASKOPS_VAR_DIR)."""
    return list((worker.var_dir / "media" / "reports").glob(f"{name}-*.csv"))


def depth(queue: str) -> int:
    return broker.queue_depths([queue], discover=False).queues[queue].depth


def run_and_wait(queue: str, *, timeout: float = 30) -> None:
    """Prove a worker on `queue` is up and working: send a quick task and wait for its success."""
    sent = send("demo.tasks.flaky_call", args=["sentinel"], kwargs={"fail_rate": 0.0}, queue=queue)
    poll_until(lambda: state_of(sent.id) == "SUCCESS", timeout=timeout, message=f"sentinel on {queue}")


def test_depths_count_every_priority_sub_queue(isolated_broker):
    queue = unique("depth")
    for priority in (0, 0, 0, 2, 5, 5, 9):
        send(REPORT, args=["x"], queue=queue, priority=priority)

    reading = broker.queue_depths([queue])

    assert reading.queues[queue].depth == 7
    assert reading.queues[queue].by_priority == {0: 4, 3: 2, 9: 1}  # steps 0/3/6/9: 2 -> 0, 5 -> 3
    assert queue in reading.seen_queues  # found through the broker's bindings too
    waiting = broker.queue_peek(queue, limit=3)
    assert [m.priority for m in waiting] == [0, 0, 0]
    assert all(m.task == REPORT and m.args == "['x']" for m in waiting)
    assert depth(queue) == 7  # peeking consumed nothing


def test_depths_honour_a_global_key_prefix(isolated_broker):
    from taskops.conf import celery_app

    app = celery_app()
    queue = unique("prefixed")
    options = {**app.conf.broker_transport_options, "global_keyprefix": "tenant1:"}
    app.conf.broker_transport_options = options
    try:
        for priority in (0, 9):
            send(REPORT, args=["p"], queue=queue, priority=priority)
        keys = isolated_broker_keys(isolated_broker)
        assert f"tenant1:{queue}" in keys and f"tenant1:{queue}\x06\x169" in keys

        assert broker.queue_depths([queue]).queues[queue].depth == 2
    finally:
        app.conf.broker_transport_options = {
            k: v for k, v in options.items() if k != "global_keyprefix"
        }


def isolated_broker_keys(server) -> set[str]:
    import redis

    return {k.decode() for k in redis.Redis.from_url(server.url).keys("*")}


@on_both_brokers(db_engine=True)
def test_pause_holds_messages_and_later_workers_then_resume_drains(start_worker, actor):
    queue, side_a, side_b = unique("pausable"), unique("side"), unique("side")
    first = start_worker(queue, side_a)

    outcome = queue_pause(actor=actor, queue=queue, reason="maintenance")

    assert outcome.ok, outcome.message
    assert first.name in outcome.message
    reports = [unique("held") for _ in range(3)]
    sent = [send(REPORT, args=[name], queue=queue) for name in reports]
    run_and_wait(side_a)  # the worker is up and working ...
    assert depth(queue) == 3  # ... but leaves the paused queue alone
    assert control.worker_ping(destination=[first.name])

    # A worker that starts after the pause is paused on that queue too.
    second = start_worker(queue, side_b)
    run_and_wait(side_b)
    assert depth(queue) == 3
    consumed = control.queue_consumers()
    assert queue not in consumed[first.name] and queue not in consumed[second.name]
    assert set(QueuePause.objects.get(queue=queue).workers) == {first.name, second.name}
    assert WorkerSeen.objects.get(name=second.name).queues == [side_b]  # it never consumed the paused one

    resumed = queue_resume(actor=actor, queue=queue)

    assert resumed.ok, resumed.message
    assert first.name in resumed.message and second.name in resumed.message
    poll_until(lambda: all(state_of(s.id) == "SUCCESS" for s in sent), timeout=30,
               message="the held messages run after resume")
    assert depth(queue) == 0
    assert not QueuePause.objects.filter(queue=queue).exists()
    assert list(AuditEntry.objects.order_by("id").values_list("action", "outcome", "reason")) == [
        ("queue.pause", "ok", "maintenance"),
        ("queue.resume", "ok", ""),
    ]


@on_both_brokers(db_engine=True)
def test_revoke_with_no_worker_online_is_kept_and_applied_when_a_worker_starts(start_worker, actor):
    queue, name = unique("revq"), unique("never")
    sent = send(REPORT, args=[name], queue=queue)

    outcome = task_revoke(actor=actor, task_ids=[sent.id])

    assert outcome.outcome == "no_reply"
    assert "NOT acknowledged" in outcome.message
    assert PendingRevoke.objects.get(task_id=sent.id).acknowledged_by == []

    worker = start_worker(queue)  # no --statedb: only the console's kept revoke can stop it

    poll_until(lambda: state_of(sent.id) == "REVOKED", timeout=30, message="the task is discarded")
    kept_name = unique("kept")  # a report that does run writes its file where report_file looks
    kept = send(REPORT, args=[kept_name], queue=queue)
    poll_until(lambda: state_of(kept.id) == "SUCCESS", timeout=30, message="a later report ran")
    assert len(report_file(worker, kept_name)) == 1
    assert report_file(worker, name) == []
    assert PendingRevoke.objects.get(task_id=sent.id).acknowledged_by == [worker.name]
    assert depth(queue) == 0


def test_revoke_of_a_queued_eta_task_means_it_never_runs(start_worker, actor):
    queue, name = unique("eta"), unique("eta-report")
    worker = start_worker(queue)
    sent = send(REPORT, args=[name], queue=queue, countdown=3)
    poll_until(
        lambda: any(t.id == sent.id for t in
                    control.worker_snapshots([worker.name], detail=True)[worker.name].scheduled),
        timeout=15, message="the worker holds the ETA task",
    )

    outcome = task_revoke(actor=actor, task_ids=[sent.id])

    assert outcome.ok and worker.name in outcome.message
    poll_until(lambda: state_of(sent.id) == "REVOKED", timeout=15, message="REVOKED row")
    later = send("demo.tasks.flaky_call", args=["after-eta"], kwargs={"fail_rate": 0.0},
                 queue=queue, countdown=4)
    poll_until(lambda: state_of(later.id) == "SUCCESS", timeout=30, message="a later ETA task ran")
    assert report_file(worker, name) == []
    assert state_of(sent.id) == "REVOKED"


@on_both_brokers()
def test_terminate_stops_a_running_task_and_its_run_shows_revoked(start_worker, actor):
    queue = unique("slow")
    worker = start_worker(queue)
    sent = send("demo.tasks.slow_task", args=[120], queue=queue)
    poll_until(lambda: state_of(sent.id) in ("STARTED", "PROGRESS"), timeout=30, message="started")

    outcome = task_revoke(actor=actor, task_ids=[sent.id], terminate=True, signal="SIGTERM",
                          reason="stuck on a dead socket")

    assert outcome.ok, outcome.message
    poll_until(lambda: state_of(sent.id) == "REVOKED", timeout=15, message="run shows REVOKED")
    poll_until(lambda: control.worker_snapshots([worker.name])[worker.name].active == (),
               timeout=15, message="nothing runs on the worker any more")
    assert AuditEntry.objects.get(action="task.terminate").params["signal"] == "SIGTERM"


def test_pool_grow_changes_the_pool_the_worker_reports(start_worker, actor):
    worker = start_worker(unique("pool"), concurrency=2)

    outcome = worker_pool_resize(actor=actor, worker=worker.name, delta=1)

    assert outcome.outcome in ("ok", "partial"), outcome.message
    assert len(outcome.detail["before"]) == 2
    # Wait for the pool to change, then check what it changed to (a poll's value is always truthy).
    processes = poll_until(
        lambda: p if len(p := control.worker_stats(destination=[worker.name])[worker.name]
                         .pool_processes) != 2 else None,
        timeout=20, message="the worker reports a changed pool",
    )
    assert len(processes) == 3, processes
    if outcome.ok:  # the outcome shows the process list the worker reported, not its reply text
        assert "now reports 3 pool processes" in outcome.message
        assert len(outcome.detail["after"]) == 3


def test_rate_limit_is_applied_by_the_worker(start_worker, actor):
    queue = unique("rated")
    worker = start_worker(queue, concurrency=2)

    outcome = worker_rate_limit(actor=actor, worker=worker.name, task_name=REPORT, rate="1/m")

    assert outcome.ok, outcome.message
    registered = control.worker_snapshots([worker.name], detail=True)[worker.name].registered
    assert registered[REPORT]["rate_limit"] == "1/m"
    first, second = (send(REPORT, args=[unique("rl")], queue=queue) for _ in range(2))
    poll_until(lambda: state_of(first.id) == "SUCCESS", timeout=30, message="first report ran")
    run_and_wait(queue)  # other work flows ...
    assert state_of(second.id) in (None, "PENDING")  # ... but the second report waits its minute

    with pytest.raises(ActionRefused):
        worker_rate_limit(actor=actor, worker=worker.name, task_name=REPORT, rate="fast please")


def test_purge_needs_the_typed_name_and_empties_every_priority(isolated_broker, actor):
    queue = unique("purge")
    for priority in (0, 5, 9, 9):
        send(REPORT, args=["p"], queue=queue, priority=priority)

    with pytest.raises(ActionRefused, match="Type the queue's name"):
        queue_purge(actor=actor, queue=queue, confirm="yes")
    assert depth(queue) == 4

    outcome = queue_purge(actor=actor, queue=queue, confirm=queue, reason="poison messages")

    assert outcome.ok and outcome.detail == {"removed": 4}
    assert depth(queue) == 0
    assert list(AuditEntry.objects.order_by("id").values_list("action", "outcome")) == [
        ("queue.purge", "refused"),
        ("queue.purge", "ok"),
    ]


def test_autoscale_is_offered_only_where_the_worker_has_an_autoscaler(start_worker, actor):
    from taskops.services import worker_autoscale

    plain = start_worker(unique("plain"))
    scaled = start_worker(unique("scaled"), extra_args=("--autoscale=3,1",))

    with pytest.raises(ActionRefused, match="not started with --autoscale"):
        worker_autoscale(actor=actor, worker=plain.name, max_processes=4, min_processes=1)
    outcome = worker_autoscale(actor=actor, worker=scaled.name, max_processes=4, min_processes=2)

    assert outcome.ok, outcome.message
    autoscaler = control.worker_stats(destination=[scaled.name])[scaled.name].autoscaler
    assert (autoscaler["max"], autoscaler["min"]) == (4, 2)


@on_both_brokers()
def test_shutdown_needs_the_typed_name_and_the_worker_goes_away(start_worker, actor):
    from taskops.models import WorkerSeen
    from taskops.services import worker_shutdown

    worker = start_worker(unique("bye"))
    with pytest.raises(ActionRefused, match="Type the worker's name"):
        worker_shutdown(actor=actor, worker=worker.name, confirm="yes")
    assert control.worker_ping(destination=[worker.name])

    outcome = worker_shutdown(actor=actor, worker=worker.name, confirm=worker.name, reason="drain")

    assert outcome.ok, outcome.message
    assert worker.process.wait(timeout=20) == 0
    assert WorkerSeen.objects.get(name=worker.name).online is False
