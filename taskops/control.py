"""The one module that talks to Celery's remote control: bounded calls, dataclasses out."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any

from celery.app.control import Control, flatten_reply
from kombu import Consumer
from kombu.pidbox import Mailbox
from kombu.utils.uuid import uuid

from taskops.conf import celery_app, config
from taskops.connection import BrokerUnavailable, broker_connection
from taskops.masking import repr_mask

__all__ = [
    "BrokerUnavailable",
    "CommandResult",
    "TaskInfo",
    "WorkerPing",
    "WorkerSnapshot",
    "WorkerStats",
    "autoscale",
    "consumer_add",
    "consumer_cancel",
    "pool_grow",
    "pool_shrink",
    "queue_consumers",
    "rate_limit",
    "revoke",
    "shutdown",
    "worker_discover",
    "worker_ping",
    "worker_registered",
    "worker_snapshots",
    "worker_stats",
]

@dataclass(frozen=True)
class WorkerPing:
    """A worker that answered a ping."""

    name: str
    ok: bool


@dataclass(frozen=True)
class WorkerStats:
    """What a worker reports about itself through `inspect().stats()`."""

    name: str
    pid: int | None
    pool_implementation: str
    pool_max_concurrency: int | None
    pool_processes: tuple[int, ...]
    prefetch_count: int | None
    uptime_seconds: int | None
    total_tasks: dict[str, int] = field(default_factory=dict)
    autoscaler: dict[str, Any] | None = None
    broker_transport: str = ""

    @property
    def tasks_started(self) -> int:
        """How many tasks the worker has started since it started, running ones included (Celery's
        `total`, counted when a pool process accepts a task), all task types together."""
        return sum(self.total_tasks.values())


@dataclass(frozen=True)
class TaskInfo:
    """A task a worker holds: running (active), prefetched (reserved) or waiting for its ETA."""

    id: str
    name: str
    args: str
    kwargs: str
    worker: str
    started_at: datetime | None = None
    eta: str = ""
    priority: int | None = None
    queue: str = ""
    acknowledged: bool = False
    pid: int | None = None


@dataclass(frozen=True)
class WorkerSnapshot:
    """Everything one round of inspection learned about a worker."""

    name: str
    stats: WorkerStats | None
    active: tuple[TaskInfo, ...] = ()
    reserved: tuple[TaskInfo, ...] = ()
    scheduled: tuple[TaskInfo, ...] = ()
    queues: tuple[str, ...] = ()
    registered: dict[str, dict[str, str]] | None = None

    @property
    def answered(self) -> bool:
        return self.stats is not None

    @property
    def held_ids(self) -> frozenset[str]:
        """Ids of every task the worker holds: running, prefetched and waiting for their ETA."""
        return frozenset(t.id for t in (*self.active, *self.reserved, *self.scheduled) if t.id)


@dataclass(frozen=True)
class CommandResult:
    """The replies to one control command: per worker, and the workers that did not answer."""

    command: str
    replies: dict[str, str]
    errors: dict[str, str]
    missing: tuple[str, ...]

    @property
    def answered(self) -> tuple[str, ...]:
        return tuple(sorted({*self.replies, *self.errors}))

    @property
    def ok(self) -> bool:
        """Every expected worker answered and none reported an error."""
        return bool(self.replies) and not self.errors and not self.missing


class _DeadlineMailbox(Mailbox):
    """kombu's Mailbox, but replies are collected until one deadline, the same way on every broker.

    kombu's `_collect` drains `limit` messages, each with the whole timeout: every message that
    arrives takes one of the `limit` turns, whether it answers this call or not (a late reply
    to an earlier call left in a Redis reply list, a reply from a worker nobody waited for
    because it was believed offline), so an awaited worker's reply can be left unread; and each
    message restarts the wait. Here only replies with this call's ticket count, the wait ends
    when every awaited worker has answered or at the deadline, and replies to other calls are
    dropped rather than kept in `unclaimed`.
    """

    def replies_collect(self, command: str, arguments: dict[str, Any], *,
                        destination: list[str] | None, awaited: frozenset[str],
                        timeout: float) -> list[dict]:
        """Publish `command` and return the replies that carry its ticket, until every worker in
        `awaited` has answered (empty: until the deadline) or `timeout` seconds have passed."""
        ticket = uuid()
        channel = self.connection.default_channel
        deadline = time.monotonic() + timeout
        self._publish(command, arguments, destination=destination, reply_ticket=ticket,
                      channel=channel, timeout=timeout, serializer=self.serializer)
        replies: list[dict] = []
        answered: set[str] = set()

        def on_reply(body, message) -> None:
            headers = message.headers or {}
            self.clock.adjust(headers.get("clock") or 0)
            if headers.get("ticket", ticket) == ticket and isinstance(body, dict):
                replies.append(body)
                answered.update(body)

        consumer = Consumer(channel, [self.reply_queue], accept=self.accept, no_ack=True,
                            callbacks=[on_reply])
        try:
            with consumer:
                while not (awaited and awaited <= answered):
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    try:
                        self.connection.drain_events(timeout=remaining)
                    except socket.timeout:
                        break
        finally:
            channel.after_reply_message_received(self.reply_queue.name)
        return replies


class _BoundedControl(Control):
    """Celery's Control, publishing on the connection it is given instead of the app's pool.

    Celery's own Control publishes every broadcast through the app's shared producer pool,
    whose connections use the workers' retry settings: against a dead broker that hangs for
    minutes. This one keeps Celery's mailbox settings and drops only the pool, so a
    broadcast goes over the console's short-timeout connection from `broker_connection()`,
    and its replies are collected by `_DeadlineMailbox`.
    """

    Mailbox = _DeadlineMailbox

    def __init__(self, app):
        super().__init__(app)
        m = self.mailbox
        self.mailbox = self.Mailbox(
            m.namespace,
            type=m.type,
            accept=m.accept,
            serializer=m.serializer,
            queue_ttl=m.queue_ttl,
            reply_queue_ttl=m.reply_queue_ttl,
            queue_expires=m.queue_expires,
            queue_exclusive=m.queue_exclusive,
            queue_durable=m.queue_durable,
            reply_queue_expires=m.reply_queue_expires,
        )


@lru_cache(maxsize=1)
def _control() -> Control:
    return _BoundedControl(celery_app())


def _broadcast(
    command: str,
    arguments: dict[str, Any],
    *,
    destination: list[str] | None,
    awaited: Iterable[str] | None,
    timeout: float | None,
) -> list[dict]:
    """Send one remote-control command over a fresh bounded connection and collect the replies
    until every `awaited` worker has answered (none named: the whole timeout) or the timeout."""
    with broker_connection() as conn:
        return _control().mailbox(conn).replies_collect(
            command, arguments, destination=destination, awaited=frozenset(awaited or ()),
            timeout=_timeout(timeout))


def _timeout(timeout: float | None) -> float:
    return config.control_timeout if timeout is None else timeout


def _command(
    command: str,
    arguments: dict[str, Any],
    *,
    destination: list[str] | None,
    expected: list[str] | None = None,
    timeout: float | None = None,
) -> CommandResult:
    """Broadcast `command` to `destination` (None: every worker) and collect the replies.

    `expected` (default: `destination`) names the workers that should answer: the call returns
    as soon as they all have, and those that did not are reported as missing.
    """
    expected = destination if expected is None else expected
    raw = _broadcast(command, arguments, destination=destination, awaited=expected, timeout=timeout)
    replies: dict[str, str] = {}
    errors: dict[str, str] = {}
    for reply in raw:
        for name, answer in reply.items():
            if isinstance(answer, dict) and "error" in answer:
                errors[name] = str(answer["error"])
            elif isinstance(answer, dict) and "ok" in answer:
                replies[name] = str(answer["ok"])
            else:
                replies[name] = str(answer)
    missing = tuple(sorted(set(expected or ()) - set(replies) - set(errors)))
    return CommandResult(command=command, replies=replies, errors=errors, missing=missing)


def consumer_cancel(queue: str, *, destination: list[str] | None) -> CommandResult:
    """Tell workers to stop consuming `queue` (messages stay in the broker)."""
    return _command("cancel_consumer", {"queue": queue}, destination=destination)


def consumer_add(queue: str, *, destination: list[str] | None) -> CommandResult:
    """Tell workers to consume `queue` again."""
    return _command(
        "add_consumer",
        {"queue": queue, "exchange": None, "exchange_type": "direct", "routing_key": None},
        destination=destination,
    )


def pool_grow(n: int, *, destination: list[str]) -> CommandResult:
    """Add `n` processes to the workers' pools."""
    return _command("pool_grow", {"n": n}, destination=destination)


def pool_shrink(n: int, *, destination: list[str]) -> CommandResult:
    """Remove `n` processes from the workers' pools (the pool shrinks once they are idle)."""
    return _command("pool_shrink", {"n": n}, destination=destination)


def autoscale(max_processes: int, min_processes: int, *, destination: list[str]) -> CommandResult:
    """Set the autoscaler's bounds (only workers started with --autoscale have one)."""
    return _command(
        "autoscale", {"max": max_processes, "min": min_processes}, destination=destination
    )


def rate_limit(task_name: str, rate: str, *, destination: list[str] | None) -> CommandResult:
    """Set a task's rate limit ("10/m", "1/s"; "" removes it) on the workers."""
    return _command(
        "rate_limit", {"task_name": task_name, "rate_limit": rate or None}, destination=destination
    )


def shutdown(*, destination: list[str]) -> CommandResult:
    """Ask workers to shut down warmly. Workers do not reply to this: check with a ping after."""
    return _command("shutdown", {}, destination=destination, timeout=0.5)


def revoke(
    task_ids: list[str],
    *,
    terminate: bool = False,
    signal: str = "SIGTERM",
    expected: list[str] | None = None,
) -> CommandResult:
    """Revoke tasks on every worker; with `terminate`, also kill the process running them.

    Every worker gets it; the call waits for the `expected` ones (or its timeout).
    """
    return _command(
        "revoke",
        {"task_id": task_ids, "terminate": terminate, "signal": signal},
        destination=None,
        expected=expected,
    )


def queue_consumers(*, timeout: float | None = None) -> dict[str, tuple[str, ...]]:
    """Which queues every worker consumes right now (waits the timeout for all to answer)."""
    replies = _inspect("active_queues", None, timeout)
    return {
        worker: tuple(sorted(q.get("name", "") for q in queues or []))
        for worker, queues in sorted(replies.items())
    }


def worker_ping(
    *, destination: list[str] | None = None, timeout: float | None = None
) -> list[WorkerPing]:
    """Ping workers (all, or the named ones); an empty list means no worker answered in time."""
    replies = _broadcast("ping", {}, destination=destination, awaited=destination, timeout=timeout)
    pings = [
        WorkerPing(name=name, ok=answer.get("ok") == "pong")
        for reply in replies
        for name, answer in reply.items()
    ]
    return sorted(pings, key=lambda p: p.name)


def worker_discover(*, timeout: float | None = None) -> list[str]:
    """Names of every worker that answers a ping within `timeout` (waits the whole timeout)."""
    return [p.name for p in worker_ping(timeout=timeout)]


def _inspect(
    method: str, destination: list[str] | None, timeout: float | None, **arguments
) -> dict[str, Any]:
    """An `inspect()` call ({worker: reply}) over the console's bounded connection."""
    replies = _broadcast(method, arguments, destination=destination, awaited=destination,
                         timeout=timeout)
    return flatten_reply(replies)


def _stats_from_reply(name: str, reply: dict) -> WorkerStats:
    pool = reply.get("pool") or {}
    implementation = str(pool.get("implementation") or "").rsplit(":", 1)[-1]
    transport = (reply.get("broker") or {}).get("transport") or ""
    return WorkerStats(
        name=name,
        pid=reply.get("pid"),
        pool_implementation=implementation,
        pool_max_concurrency=pool.get("max-concurrency"),
        pool_processes=tuple(pool.get("processes") or ()),
        prefetch_count=reply.get("prefetch_count"),
        uptime_seconds=reply.get("uptime"),
        total_tasks=dict(reply.get("total") or {}),
        autoscaler=reply.get("autoscaler") or None,
        broker_transport=str(transport),
    )


def worker_stats(
    *, destination: list[str] | None = None, timeout: float | None = None
) -> dict[str, WorkerStats]:
    """Return `inspect().stats()` per worker; workers that did not answer are absent."""
    replies = _inspect("stats", destination, timeout)
    return {name: _stats_from_reply(name, reply) for name, reply in sorted(replies.items())}


# What a reserved or scheduled task shows for its arguments: a worker answers with their real
# values there, never the sender's reprs, so what the sender masked cannot be told.
ARGUMENTS_NOT_SHOWN = "(arguments not shown: a worker reports waiting tasks' real values)"


def _task_info(worker: str, data: dict, *, eta: str = "", priority: int | None = None) -> TaskInfo:
    delivery = data.get("delivery_info") or {}
    started = data.get("time_start")
    # Active tasks are asked with safe=True: their args are the sender's reprs (text).
    args, kwargs = data.get("args"), data.get("kwargs")
    reprs = isinstance(args, str) and isinstance(kwargs, str)
    return TaskInfo(
        id=str(data.get("id") or ""),
        name=str(data.get("name") or data.get("type") or ""),
        args=repr_mask(args)[:1000] if reprs else ARGUMENTS_NOT_SHOWN,
        kwargs=repr_mask(kwargs)[:1000] if reprs else "",
        worker=worker,
        started_at=datetime.fromtimestamp(started, tz=timezone.utc) if started else None,
        eta=eta or "",
        priority=priority if priority is not None else delivery.get("priority"),
        queue=str(delivery.get("routing_key") or ""),
        acknowledged=bool(data.get("acknowledged")),
        pid=data.get("worker_pid"),
    )


def _tasks_by_worker(replies: dict, *, scheduled: bool = False) -> dict[str, tuple[TaskInfo, ...]]:
    result = {}
    for worker, items in replies.items():
        tasks = []
        for item in items or []:
            if scheduled:
                tasks.append(
                    _task_info(worker, item.get("request") or {}, eta=item.get("eta") or "",
                               priority=item.get("priority"))
                )
            else:
                tasks.append(_task_info(worker, item))
        result[worker] = tuple(tasks)
    return result


def _registered_by_worker(replies: dict) -> dict[str, dict[str, dict[str, str]]]:
    """'name [rate_limit=10/m]' entries -> {name: {"rate_limit": "10/m"}} per worker."""
    result = {}
    for worker, entries in replies.items():
        tasks: dict[str, dict[str, str]] = {}
        for entry in entries or []:
            name, _, rest = str(entry).partition(" [")
            attrs = {}
            for pair in rest.rstrip("]").split():
                key, _, value = pair.partition("=")
                if key:
                    attrs[key] = value
            tasks[name] = attrs
        result[worker] = dict(sorted(tasks.items()))
    return result


def worker_registered(
    destination: list[str], *, timeout: float | None = None
) -> dict[str, dict[str, dict[str, str]]]:
    """Registered tasks (with their rate limits) per named worker; silent workers are absent."""
    if not destination:
        return {}
    replies = _inspect("registered", destination, timeout, taskinfoitems=["rate_limit"])
    return _registered_by_worker(replies)


def worker_snapshots(
    destination: list[str], *, detail: bool = False, timeout: float | None = None
) -> dict[str, WorkerSnapshot]:
    """Inspect the named workers: stats, queues and every task each holds (each call returns once
    all have answered); with `detail`, also registered tasks with their rate limits.

    Stats, queues and ETA tasks are asked in parallel; then, of the workers that answered,
    prefetched tasks, then running ones, one question after the other: a task moves from ETA to
    prefetched to running, so one that moves on between two answers is in one of them, and
    `held_ids` misses none of the tasks a worker holds. A worker that did not answer every
    question in time gets a snapshot with `stats=None` (it did not answer).
    Raises BrokerUnavailable when the broker cannot be reached.
    """
    if not destination:
        return {}
    calls: dict[str, Callable[[], dict]] = {
        "stats": lambda: _inspect("stats", destination, timeout),
        "active_queues": lambda: _inspect("active_queues", destination, timeout),
        "scheduled": lambda: _inspect("scheduled", destination, timeout),
    }
    if detail:
        calls["registered"] = lambda: worker_registered(destination, timeout=timeout)
    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        futures = {key: pool.submit(call) for key, call in calls.items()}
        results = {key: future.result() for key, future in futures.items()}
    answering = sorted(set(destination) & set(results["stats"]) & set(results["scheduled"]))
    results["reserved"] = _inspect("reserved", answering, timeout) if answering else {}
    answering = [name for name in answering if name in results["reserved"]]
    # safe: the sender's argument reprs (it may have masked them), not the real values.
    results["active"] = _inspect("active", answering, timeout, safe=True) if answering else {}
    answering = [name for name in answering if name in results["active"]]
    active = _tasks_by_worker(results["active"])
    reserved = _tasks_by_worker(results["reserved"])
    scheduled = _tasks_by_worker(results["scheduled"], scheduled=True)
    registered = results.get("registered", {})
    snapshots = {}
    for name in sorted(destination):
        if name not in answering:
            snapshots[name] = WorkerSnapshot(name=name, stats=None)
            continue
        stats = results["stats"][name]
        queues = tuple(sorted(q.get("name", "") for q in results["active_queues"].get(name) or []))
        snapshots[name] = WorkerSnapshot(
            name=name,
            stats=_stats_from_reply(name, stats),
            active=active.get(name, ()),
            reserved=reserved.get(name, ()),
            scheduled=scheduled.get(name, ()),
            queues=queues,
            registered=registered.get(name) if detail else None,
        )
    return snapshots
