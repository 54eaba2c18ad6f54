"""The console's reading, checked against Celery's own inspect and the Redis broker itself, after each change of a live cluster.

After each of: enqueue, worker start, pause, revoke, drain, Ctrl-C (a warm shutdown while a task
runs), SIGKILL (and returning its stranded message), SIGSTOP/SIGCONT, the console's shared reading
(`selectors.live.cluster_reading()`, which the dashboard shows), the dashboard, the queue page and
each worker's page tell the same as `app.control.inspect()` (Celery's own, not the console's
adapter) and the broker's keys read with the redis client — within one reading period.

What inspect cannot say (a silent worker is frozen, stopping or gone) is what the test did to its
process: the console must name exactly that.
"""

from __future__ import annotations

import json
import os
import re
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest
import redis
from django.db import connections
from django.urls import reverse
from django.utils import timezone
from django_celery_results.models import TaskResult

from taskops.conf import celery_app, config
from taskops.models import AuditEntry, QueueDepthSample, WorkerSeen
from taskops.selectors.live import cluster_reading
from tests.support.poll import poll_until
from tests.support.tasks import send, unique

pytestmark = pytest.mark.django_db(transaction=True)

SLOW = "demo.tasks.slow_task"
QUICK = "demo.tasks.flaky_call"
PRIORITY_KEYS = ("", "\x06\x163", "\x06\x166", "\x06\x169")  # kombu's list per priority step
# One reading period (TASKOPS_LIVE_TTL) plus the time one reading, Celery's inspect and the pages
# take on a loaded 2-core machine (a silent worker costs each call its timeout).
ONE_READING = 15.0


@dataclass
class View:
    """One queue and the workers, as one side tells them."""

    waiting: int | None = None
    in_flight: int | None = None
    stranded: int | None = None
    consumers: tuple[str, ...] = ()
    paused: bool | None = None
    states: dict[str, str] = field(default_factory=dict)
    running: dict[str, int] = field(default_factory=dict)  # answering worker -> tasks it runs
    started: dict[str, int] = field(default_factory=dict)  # answering worker -> tasks it started

    def differences(self, other: View, label: str) -> list[str]:
        return [f"{label} {name}: {mine!r} != {theirs!r}" for name, mine, theirs in (
            (name, getattr(self, name), getattr(other, name)) for name in vars(self))
                if theirs is not None and mine != theirs]


@dataclass
class Truth:
    """Celery's inspect and the broker, read directly."""

    view: View
    answering: tuple[str, ...]
    revoked: dict[str, set[str]]  # answering worker -> ids it keeps revoked


def celery_and_broker(broker_url: str, queue: str, workers: list[str], silent: dict[str, str],
                      paused: bool) -> Truth:
    """What Celery's own inspect and the broker's keys say; `silent`: what the test did to the
    workers that cannot answer (the state the console must name)."""
    answering = sorted(workers)
    replies: dict[str, dict] = {}
    # Asked in the order a task moves (ETA, prefetched, running), so a task moving on between two
    # answers is in one of them; a worker that stops answering midway is asked nothing more.
    for method in ("ping", "scheduled", "reserved", "active", "active_queues", "stats", "revoked"):
        # 1 s: on Celery's reused connection a shorter timeout loses replies (GUIDE.md, section 3).
        inspect = celery_app().control.inspect(destination=answering, timeout=1.0,
                                               limit=len(answering))
        replies[method] = (getattr(inspect, method)() or {}) if answering else {}
        answering = sorted(set(answering) & set(replies[method]))
    held = {w: {(t.get("request") or t)["id"] for method in ("scheduled", "reserved", "active")
                for t in replies[method].get(w) or []} for w in answering}
    active, queues, stats = replies["active"], replies["active_queues"], replies["stats"]
    revoked = {w: set(replies["revoked"][w] or []) for w in answering}

    client = redis.Redis.from_url(broker_url)
    waiting = sum(client.llen(queue + suffix) for suffix in PRIORITY_KEYS)
    in_flight = [json.loads(raw)[0]["headers"]["id"] for raw in client.hvals("unacked")
                 if json.loads(raw)[2] == queue]
    alive_silent = [w for w, state in silent.items() if state in ("not answering", "stopping")]
    held_ids = set().union(*held.values()) if held else set()
    stranded = 0 if alive_silent else sum(1 for task_id in in_flight if task_id not in held_ids)
    states = {w: "online" for w in answering}
    # What the test did to a worker shows only once it stops answering: until then, no agreement.
    states.update({w: state if w not in answering else f"online, not {state} yet"
                   for w, state in silent.items()})
    return Truth(
        view=View(waiting=waiting, in_flight=len(in_flight), stranded=stranded,
                  consumers=tuple(sorted(w for w in answering
                                         if queue in {q["name"] for q in queues.get(w, [])})),
                  paused=paused, states=states,
                  running={w: len(active.get(w, [])) for w in answering},
                  started={w: sum(stats[w]["total"].values()) for w in answering if w in stats}),
        answering=tuple(answering), revoked=revoked)


def console_reading(queue: str, workers: list[str]) -> View:
    reading = cluster_reading()
    row = reading.queue(queue)
    rows = {w: reading.worker(w) for w in workers}
    return View(
        waiting=row.depth if row else None, in_flight=row.in_flight if row else None,
        stranded=row.stranded if row else None, consumers=row.consumers if row else (),
        paused=row.paused if row else None,
        states={w: r.status for w, r in rows.items() if r is not None},
        running={w: r.active_count for w, r in rows.items() if r and r.active_count is not None},
        started={w: r.snapshot.stats.tasks_started for w, r in rows.items()
                 if r and r.snapshot and r.snapshot.stats})


def _number(pattern: str, text: str) -> int | None:
    found = re.search(pattern, text)
    return int(found.group(1)) if found else None


def console_pages(client, queue: str, workers: list[str]) -> View:
    """The same, as the dashboard, the queue page and each worker's page show it."""
    dashboard = client.get(reverse("admin:index")).content.decode()
    page = client.get(reverse("admin:taskops_queue_detail", args=[queue])).content.decode()
    q = re.escape(queue)
    states = {}
    for worker in workers:
        w = re.escape(worker)
        listed = re.search(rf'data-worker-state="{w}"><span class="taskops-badge [^"]*"[^>]*>([^<]+)<',
                           dashboard)
        detail = client.get(reverse("admin:taskops_worker_detail", args=[worker])).content.decode()
        own = re.search(rf'data-worker-state="{w}">.*?<span class="taskops-badge [^"]*"[^>]*>([^<]+)<',
                        detail, re.S)
        said = [found.group(1) if found else None for found in (listed, own)]
        states[worker] = said[0] if said[0] == said[1] else f"the list says {said[0]}, the page {said[1]}"
    return View(
        waiting=_number(rf'data-queue-depth="{q}">(\d+)<', page),
        in_flight=_number(rf'data-queue-in-flight="{q}">(\d+)', page),
        stranded=_number(rf'data-queue-stranded="{q}">(\d+) stranded', page) or 0,
        paused='<span class="taskops-badge paused">paused</span>' in page, states=states)


def agree(client, broker_url: str, queue: str, workers: list[str], *, silent: dict[str, str] | None = None,
          paused: bool = False, since=None, also=lambda truth: []) -> Truth:
    """Wait (one reading period at most) until the console's reading and pages say what Celery's
    inspect and the broker say; return what those said. `since`: the reading must be later."""
    silent = silent or {}
    last: list[str] = []

    def check() -> Truth | None:
        nonlocal last
        truth = celery_and_broker(broker_url, queue, workers, silent, paused)
        reading = console_reading(queue, workers)
        pages = console_pages(client, queue, workers)
        last = [*reading.differences(truth.view, "reading"),
                *View(**{**vars(pages), "consumers": truth.view.consumers, "running": truth.view.running,
                         "started": truth.view.started}).differences(truth.view, "pages"),
                *also(truth)]
        if since is not None and cluster_reading().taken_at < since:
            last.append("the reading is older than the change")
        return truth if not last else None

    try:
        return poll_until(check, timeout=ONE_READING, interval=0.3)
    except AssertionError:
        raise AssertionError(f"the console does not agree with inspect and the broker: {last}") from None


def state_of(task_id: str) -> str | None:
    return TaskResult.objects.filter(task_id=task_id).values_list("status", flat=True).first()


def running_on(worker, task_id: str) -> bool:
    active = celery_app().control.inspect(destination=[worker.name], timeout=1.0, limit=1).active() or {}
    return any(t["id"] == task_id for t in active.get(worker.name, []))


@dataclass
class Scene:
    queue: str
    url: str
    worker: object
    task_id: str


def worker_running_a_slow_task(client, broker, start_worker, prefix: str, seconds: float) -> Scene:
    """A new queue, one worker of one process on it, running a task of `seconds`; all agree."""
    queue = unique(prefix)
    worker = start_worker(queue, concurrency=1)
    task = send(SLOW, args=[seconds], kwargs={"step": 0.2}, queue=queue)
    poll_until(lambda: running_on(worker, task.id), timeout=30, message="the task runs")
    agree(client, broker.url, queue, [worker.name], since=timezone.now())
    return Scene(queue, broker.url, worker, task.id)


@dataclass
class Watched:
    states: set[str] = field(default_factory=set)
    banners: set[str] = field(default_factory=set)


@contextmanager
def watching_readings() -> Iterator[Watched]:
    """What a viewer refreshing the shared reading sees while the block runs (in a thread: a
    worker started from a thread other than the test's would die with it, PR_SET_PDEATHSIG)."""
    seen, done = Watched(), threading.Event()

    def watch() -> None:
        try:
            while not done.is_set():
                reading = cluster_reading()
                seen.states |= {w.status for w in reading.workers}
                seen.banners |= {b for b in reading.banners if "Not answering" in b}
                done.wait(0.2)
        finally:
            connections.close_all()

    watcher = threading.Thread(target=watch, name="viewer")
    watcher.start()
    try:
        yield seen
    finally:
        done.set()
        watcher.join()


@pytest.fixture
def ops(role_client):
    return role_client("Operations")


@pytest.mark.db_engine  # pause and revoke lock their rows (select_for_update)
def test_enqueue_worker_start_pause_revoke_and_drain(ops, isolated_broker, start_worker):
    queue = unique("xq")
    url = isolated_broker.url

    # Enqueue: three slow tasks, nobody consumes the queue yet.
    sent = [send(SLOW, args=[20], kwargs={"step": 0.2}, queue=queue) for _ in range(3)]
    agree(ops, url, queue, [], since=timezone.now())

    # Worker start: never "not answering" (nor in the banner) while it starts, as a viewer
    # refreshing meanwhile sees it.
    with watching_readings() as seen:
        worker = start_worker(queue, concurrency=2)
    assert seen.states <= {"starting", "online"} and not seen.banners, (seen.states, seen.banners)
    truth = agree(ops, url, queue, [worker.name], since=timezone.now())
    assert (truth.view.waiting, truth.view.in_flight, truth.view.running) == (1, 2, {worker.name: 2})

    # Pause: the worker stops consuming; what runs runs on, the rest waits.
    page = reverse("admin:taskops_queue_detail", args=[queue])
    ops.post(reverse("admin:taskops_queue_pause", args=[queue]), {"reason": "cross-check"})
    truth = agree(ops, url, queue, [worker.name], paused=True, since=timezone.now())
    assert truth.view.consumers == () and truth.view.in_flight == 2

    # Revoke a waiting message: still in the broker, marked on the queue page, revoked on the worker.
    doomed = send(QUICK, args=["doomed"], kwargs={"fail_rate": 0.0}, queue=queue)
    ops.post(reverse("admin:taskops_task_revoke"), {"task_id": doomed.id, "reason": "cross-check"})
    truth = agree(ops, url, queue, [worker.name], paused=True, since=timezone.now(),
                  also=lambda truth: [] if doomed.id in truth.revoked.get(worker.name, set())
                  else ["the worker does not keep the revoke"])
    assert truth.view.waiting == 2
    row = re.search(rf'data-waiting="{doomed.id}">.*?</tr>', ops.get(page).content.decode(), re.S)
    assert row and "data-revoked" in row.group(0), row and row.group(0)

    # Drain: resumed, every task runs but the revoked one; nothing waits or is in flight.
    ops.post(reverse("admin:taskops_queue_resume", args=[queue]), {"reason": "cross-check"})
    poll_until(lambda: all(state_of(s.id) == "SUCCESS" for s in sent) and state_of(doomed.id) == "REVOKED",
               timeout=90, message="the queue drains")
    truth = agree(ops, url, queue, [worker.name], since=timezone.now())
    assert (truth.view.waiting, truth.view.in_flight, truth.view.stranded) == (0, 0, 0)
    assert truth.view.started == {worker.name: 3}  # Celery counts started tasks; the revoked one never started


@pytest.fixture
def offline_after(settings, start_beat):
    """TASKOPS_WORKER_OFFLINE_AFTER_SECONDS for the console and beat's sampler (sampling every second)."""

    def set_to(seconds: float):
        settings.TASKOPS_WORKER_OFFLINE_AFTER_SECONDS = seconds
        return start_beat(env={"TASKOPS_SAMPLE_INTERVAL": "1",
                               "TASKOPS_WORKER_OFFLINE_AFTER_SECONDS": str(seconds)})

    return set_to


def test_ctrl_c_while_a_task_runs(ops, isolated_broker, start_worker, offline_after):
    offline_after(60)
    scene = worker_running_a_slow_task(ops, isolated_broker, start_worker, "xc", 20)
    queue, url, warm, finishing = scene.queue, scene.url, scene.worker, scene.task_id

    # Ctrl-C: stopping (not offline) while it finishes its task, answering nobody meanwhile.
    os.kill(warm.process.pid, signal.SIGINT)
    truth = agree(ops, url, queue, [warm.name], silent={warm.name: "stopping"}, since=timezone.now())
    assert truth.view.in_flight == 1 and truth.view.stranded == 0  # it still holds its task
    assert state_of(finishing) != "SUCCESS"

    # It finished the task and said goodbye: offline.
    warm.process.wait(timeout=60)
    truth = agree(ops, url, queue, [warm.name], silent={warm.name: "offline"}, since=timezone.now())
    assert state_of(finishing) == "SUCCESS" and truth.view.in_flight == 0
    assert WorkerSeen.objects.get(name=warm.name).goodbye_at is not None


def test_sigkill_leaves_a_stranded_message_that_goes_back_to_its_queue(
        ops, isolated_broker, start_worker, offline_after):
    offline_after(4)
    # SIGKILL while a task runs: its message stays unacknowledged, held by nobody: stranded, once
    # the worker counts as offline (silent for TASKOPS_WORKER_OFFLINE_AFTER_SECONDS).
    scene = worker_running_a_slow_task(ops, isolated_broker, start_worker, "xk", 120)
    queue, url, killed, lost = scene.queue, scene.url, scene.worker, scene.task_id
    os.killpg(killed.process.pid, signal.SIGKILL)
    killed.process.wait()
    everyone = [killed.name]
    gone = {killed.name: "offline"}
    truth = agree(ops, url, queue, everyone, silent=gone, since=timezone.now())
    assert (truth.view.in_flight, truth.view.stranded, truth.view.waiting) == (1, 1, 0)
    assert 'data-stranded-total>1 stranded' in ops.get(reverse("admin:index")).content.decode()
    poll_until(lambda: not WorkerSeen.objects.get(name=killed.name).online, timeout=ONE_READING,
               message="beat's sampler records the killed worker offline")

    # Returned to the queue now, through the queue page: waiting again, nothing in flight.
    ops.post(reverse("admin:taskops_queue_restore", args=[queue]), {"reason": "worker was killed"})
    entry = AuditEntry.objects.get(action="queue.restore")
    assert (entry.outcome, entry.detail["restored"], entry.detail["task_ids"]) == ("ok", 1, [lost])
    truth = agree(ops, url, queue, everyone, silent=gone, since=timezone.now())
    assert (truth.view.in_flight, truth.view.stranded, truth.view.waiting) == (0, 0, 1)

    # Worker start: a new worker takes it and runs it again.
    again = start_worker(queue, concurrency=1)
    truth = agree(ops, url, queue, [*everyone, again.name], silent=gone, since=timezone.now())
    assert (truth.view.in_flight, truth.view.waiting, truth.view.running) == (1, 0, {again.name: 1})


def test_a_frozen_worker_is_not_answering_then_online_again(ops, isolated_broker, start_worker,
                                                             offline_after):
    offline_after(60)
    scene = worker_running_a_slow_task(ops, isolated_broker, start_worker, "xs", 60)
    queue, url, worker = scene.queue, scene.url, scene.worker

    # SIGSTOP: not answering (busy or frozen), not offline, and not for missing one of beat's pings.
    stopped_at = timezone.now()
    os.kill(worker.process.pid, signal.SIGSTOP)
    try:
        truth = agree(ops, url, queue, [worker.name], silent={worker.name: "not answering"},
                      since=timezone.now())
        assert truth.view.in_flight == 1 and truth.view.stranded == 0  # it may still hold it
        poll_until(lambda: QueueDepthSample.objects.filter(queue=queue, sampled_at__gt=stopped_at)
                   .values("sampled_at").distinct().count() >= 3,
                   timeout=ONE_READING, message="beat's sampler sampled three times since")
        assert WorkerSeen.objects.get(name=worker.name).online
        agree(ops, url, queue, [worker.name], silent={worker.name: "not answering"},
              since=timezone.now())
        assert f"Not answering within {config.control_timeout:.1f} s: {worker.name}" in \
            ops.get(reverse("admin:index")).content.decode()
    finally:
        os.kill(worker.process.pid, signal.SIGCONT)

    truth = agree(ops, url, queue, [worker.name], since=timezone.now())
    assert truth.view.running == {worker.name: 1} and truth.view.in_flight == 1
