"""In-memory stand-ins for the console's three adapters (control, broker, publish), for page tests.

`FakeCluster` holds what a Redis broker and its workers would: queues of messages, workers with
their queues, pools, rate limits and revokes. Its `control`, `broker` and `publish` attributes
offer every public function of `taskops.control`, `taskops.broker` and `taskops.publish` with
the same signature and the same dataclasses out; `install(monkeypatch)` puts them in place of
the real ones (also where a module imported a function by name). What the fakes answer is held
to what the real adapters answer, against a real Redis and a real worker, by
tests/integration/test_adapter_contracts.py: change a fake only together with its contract.

What the fakes do not do: run tasks, wait (a worker that does not answer is reported missing at
once instead of after the control timeout), or model RabbitMQ.
"""

from __future__ import annotations

import bisect
import inspect
import itertools
import os
import sys
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

from celery.utils.saferepr import saferepr

from taskops import broker as real_broker
from taskops import control as real_control
from taskops import publish as real_publish
from taskops.broker import (
    BrokerReading,
    BrokerStatus,
    InFlightMessage,
    PriorityRange,
    QueueDepth,
    QueueNotPurgeable,
    WaitingMessage,
)
from taskops.capture import RETRY_OF_HEADER
from taskops.conf import celery_app
from taskops.connection import BrokerUnavailable
from taskops.connection import broker_connection as real_broker_connection
from taskops.control import CommandResult, TaskInfo, WorkerPing, WorkerSnapshot, WorkerStats
from taskops.publish import Send

# kombu's Redis transport as the console configures it (CELERY_BROKER_TRANSPORT_OPTIONS).
PRIORITY_STEPS = (0, 3, 6, 9)
_SEP = "\x06\x16"
_KOMBU_OWN_KEYS = {"unacked", "unacked_index", "unacked_mutex"}
_pids = itertools.count(os.getpid() * 100)

ADAPTERS = {"control": real_control, "broker": real_broker, "publish": real_publish}


# The pure rules of the broker adapter, kept before install() puts the fakes in their place.
_REAL_CELERY_OWN_QUEUE = real_broker.celery_own_queue
_REAL_PRIORITY_RANGE = real_broker.priority_range


def adapter_functions(module) -> dict[str, object]:
    """The public functions an adapter module defines itself: the contract a fake must offer."""
    return {name: value for name, value in vars(module).items()
            if inspect.isfunction(value) and not name.startswith("_")
            and value.__module__ == module.__name__}


def _registered_tasks() -> dict[str, dict[str, str]]:
    """What `inspect registered` lists for a worker the tests start: the app's tasks (not Celery's
    own, nor test-only ones a worker gets only with --include), with rate limits."""
    tasks = celery_app().tasks
    return {name: ({"rate_limit": str(task.rate_limit)} if task.rate_limit is not None else {})
            for name, task in sorted(tasks.items())
            if not name.startswith(("celery.", "tests.")) and not task.__module__.startswith("tests.")}


def _no_real_broker(*args, **kwargs):
    raise AssertionError("a real broker connection was opened while the adapters are faked")


@dataclass
class FakeWorker:
    """A worker as the control adapter sees it."""

    name: str
    queues: list[str]
    concurrency: int = 2
    autoscale: tuple[int, int] | None = None  # (max, min) when started with --autoscale
    answers: bool = True  # False: frozen (alive, silent)
    active: list[TaskInfo] = field(default_factory=list)
    reserved: list[TaskInfo] = field(default_factory=list)
    scheduled: list[TaskInfo] = field(default_factory=list)
    revoked: set[str] = field(default_factory=set)
    registered: dict[str, dict[str, str]] = field(default_factory=_registered_tasks)
    processes: list[int] = field(default_factory=list)
    pid: int = field(default_factory=lambda: next(_pids))
    prefetch_count: int = 0

    def __post_init__(self) -> None:
        # An autoscaling worker starts with its minimum and prefetches for its maximum.
        if self.autoscale:
            self.concurrency = self.autoscale[1]
        if not self.processes:
            self.processes = [next(_pids) for _ in range(self.concurrency)]
        multiplier = celery_app().conf.worker_prefetch_multiplier
        self.prefetch_count = (self.autoscale[0] if self.autoscale else self.concurrency) * multiplier

    def stats(self) -> WorkerStats:
        autoscaler = ({"max": self.autoscale[0], "min": self.autoscale[1],
                       "current": len(self.processes), "qty": len(self.reserved)}
                      if self.autoscale else None)
        return WorkerStats(
            name=self.name, pid=self.pid, pool_implementation="TaskPool",
            pool_max_concurrency=self.concurrency, pool_processes=tuple(self.processes),
            prefetch_count=self.prefetch_count,
            uptime_seconds=1, total_tasks={}, autoscaler=autoscaler, broker_transport="redis",
        )


@dataclass
class FakeMessage:
    """A message waiting in a queue: what the broker keeps, and the call it carries."""

    id: str
    task: str
    args: list
    kwargs: dict
    argsrepr: str
    kwargsrepr: str
    priority: int
    headers: dict
    eta: str = ""
    expires: str = ""


class FakeCluster:
    """One broker and its workers, in memory. Every control command sent is kept in `commands`."""

    def __init__(self) -> None:
        self.broker_up = True
        self.workers: dict[str, FakeWorker] = {}
        self.queues: dict[str, list[FakeMessage]] = {}  # oldest first: the next to run
        # Taken and not acknowledged, by delivery tag: (message, queue, when it was taken).
        self.unacked: dict[str, tuple[FakeMessage, str, datetime]] = {}
        self.declared: set[str] = set()  # queues bound in the broker (published to or consumed)
        self.commands: list[tuple[str, dict, tuple[str, ...] | None]] = []
        self.sent: list[tuple[Send, dict]] = []  # each publish: the call and the send options
        self.control = SimpleNamespace(**{n: getattr(self, f"_control_{n}")
                                          for n in adapter_functions(real_control)})
        self.broker = SimpleNamespace(**{n: getattr(self, f"_broker_{n}")
                                         for n in adapter_functions(real_broker)})
        self.publish = SimpleNamespace(**{n: getattr(self, f"_publish_{n}")
                                          for n in adapter_functions(real_publish)})

    # --- Setting the scene ------------------------------------------------------------------

    def worker_add(self, name: str, *queues: str, **options) -> FakeWorker:
        worker = FakeWorker(name=name, queues=list(queues or ("default", "reports", "emails")),
                            **options)
        self.workers[name] = worker
        self.declared.update(worker.queues)
        return worker

    def install(self, monkeypatch) -> FakeCluster:
        """Replace the real adapters' functions by this cluster's, wherever they were imported."""
        for label, module in ADAPTERS.items():
            fakes = getattr(self, label)
            for name, real in adapter_functions(module).items():
                fake = getattr(fakes, name)
                for holder in list(sys.modules.values()):
                    if (getattr(holder, "__name__", "").startswith("taskops")
                            and getattr(holder, name, None) is real):
                        monkeypatch.setattr(holder, name, fake)
        # Nothing else may open a broker connection meanwhile: a page that did would bypass the
        # adapters (and their contract), so it fails loudly instead of quietly using a real broker.
        for holder in list(sys.modules.values()):
            if (getattr(holder, "__name__", "").startswith("taskops")
                    and getattr(holder, "broker_connection", None) is real_broker_connection):
                monkeypatch.setattr(holder, "broker_connection", _no_real_broker)
        return self

    def _up(self) -> None:
        if not self.broker_up:
            raise BrokerUnavailable("broker unreachable: [Errno 111] Connection refused (fake)")

    # --- taskops.control --------------------------------------------------------------------

    def _answering(self, destination: Iterable[str] | None,
                   expected: list[str] | None = None) -> list[FakeWorker]:
        """Workers whose reply is collected: Celery stops after as many as it expects."""
        names = list(self.workers) if destination is None else list(destination)
        if expected:
            names = [*[n for n in expected if n in names], *[n for n in names if n not in expected]]
        answering = [self.workers[n] for n in names if n in self.workers and self.workers[n].answers]
        return answering[:len(expected)] if expected else answering

    def _command(self, command: str, arguments: dict, destination: list[str] | None,
                 answer, *, expected: list[str] | None = None, replies: bool = True) -> CommandResult:
        self._up()
        self.commands.append((command, arguments, tuple(destination) if destination else None))
        expected = destination if expected is None else expected
        ok: dict[str, str] = {}
        errors: dict[str, str] = {}
        for worker in self._answering(destination, expected):
            kind, text = answer(worker)
            if replies:
                (ok if kind == "ok" else errors)[worker.name] = text
        missing = tuple(sorted(set(expected or ()) - set(ok) - set(errors)))
        return CommandResult(command=command, replies=ok, errors=errors, missing=missing)

    def _control_consumer_cancel(self, queue: str, *, destination: list[str] | None) -> CommandResult:
        def answer(worker):
            if queue in worker.queues:
                worker.queues.remove(queue)
            return "ok", f"no longer consuming from {queue}"
        return self._command("cancel_consumer", {"queue": queue}, destination, answer)

    def _control_consumer_add(self, queue: str, *, destination: list[str] | None) -> CommandResult:
        def answer(worker):
            if queue not in worker.queues:
                worker.queues.append(queue)
            self.declared.add(queue)
            return "ok", f"add consumer {queue}"
        return self._command("add_consumer", {"queue": queue}, destination, answer)

    def _pool_change(self, command: str, n: int, destination: list[str], grow: bool) -> CommandResult:
        def answer(worker):
            if worker.autoscale:
                return "error", (f"pool_{'grow' if grow else 'shrink'} is not supported with "
                                 "autoscale. Adjust autoscale range instead.")
            if grow:
                worker.processes.extend(next(_pids) for _ in range(n))
            else:
                del worker.processes[-n:]
            worker.prefetch_count += (n if grow else -n) * celery_app().conf.worker_prefetch_multiplier
            return "ok", f"pool will {'grow' if grow else 'shrink'}"
        return self._command(command, {"n": n}, destination, answer)

    def _control_pool_grow(self, n: int, *, destination: list[str]) -> CommandResult:
        return self._pool_change("pool_grow", n, destination, grow=True)

    def _control_pool_shrink(self, n: int, *, destination: list[str]) -> CommandResult:
        return self._pool_change("pool_shrink", n, destination, grow=False)

    def _control_autoscale(self, max_processes: int, min_processes: int, *,
                           destination: list[str]) -> CommandResult:
        def answer(worker):
            if not worker.autoscale:
                return "error", "ValueError('Autoscale not enabled')"
            worker.autoscale = (max_processes, min_processes)
            return "ok", f"autoscale now max={max_processes} min={min_processes}"
        return self._command("autoscale", {"max": max_processes, "min": min_processes},
                             destination, answer)

    def _control_rate_limit(self, task_name: str, rate: str, *,
                            destination: list[str] | None) -> CommandResult:
        def answer(worker):
            if task_name not in worker.registered:
                return "error", "unknown task"
            attrs = dict(worker.registered[task_name])
            if rate:
                attrs["rate_limit"] = rate
            else:
                attrs.pop("rate_limit", None)
            worker.registered[task_name] = attrs
            return "ok", ("new rate limit set successfully" if rate
                          else "rate limit disabled successfully")
        return self._command("rate_limit", {"task_name": task_name, "rate_limit": rate or None},
                             destination, answer)

    def _control_shutdown(self, *, destination: list[str]) -> CommandResult:
        def answer(worker):
            del self.workers[worker.name]
            return "ok", ""
        return self._command("shutdown", {}, destination, answer, replies=False)

    def _control_revoke(self, task_ids: list[str], *, terminate: bool = False,
                        signal: str = "SIGTERM", expected: list[str] | None = None) -> CommandResult:
        def answer(worker):
            worker.revoked.update(task_ids)
            if terminate:
                hit = [t.id for t in worker.active if t.id in task_ids]
                worker.active = [t for t in worker.active if t.id not in task_ids]
                return "ok", f"terminate: {', '.join(hit)}" if hit else "terminate: tasks unknown"
            return "ok", f"tasks {set(task_ids)} flagged as revoked"
        return self._command("revoke", {"task_id": list(task_ids), "terminate": terminate,
                                        "signal": signal}, None, answer, expected=expected)

    def _control_queue_consumers(self, *, timeout: float | None = None) -> dict[str, tuple[str, ...]]:
        self._up()
        return {w.name: tuple(sorted(w.queues)) for w in sorted(self._answering(None),
                                                                 key=lambda w: w.name)}

    def _control_worker_ping(self, *, destination: list[str] | None = None,
                             timeout: float | None = None) -> list[WorkerPing]:
        self._up()
        return sorted((WorkerPing(w.name, True) for w in self._answering(destination)),
                      key=lambda p: p.name)

    def _control_worker_discover(self, *, timeout: float | None = None) -> list[str]:
        return [p.name for p in self._control_worker_ping(timeout=timeout)]

    def _control_worker_stats(self, *, destination: list[str] | None = None,
                              timeout: float | None = None) -> dict[str, WorkerStats]:
        self._up()
        return {w.name: w.stats() for w in sorted(self._answering(destination), key=lambda w: w.name)}

    def _control_worker_registered(self, destination: list[str], *,
                                   timeout: float | None = None) -> dict[str, dict[str, dict[str, str]]]:
        if not destination:
            return {}
        self._up()
        return {w.name: {k: dict(v) for k, v in sorted(w.registered.items())}
                for w in self._answering(destination)}

    def _control_worker_snapshots(self, destination: list[str], *, detail: bool = False,
                                  timeout: float | None = None) -> dict[str, WorkerSnapshot]:
        if not destination:
            return {}
        self._up()
        answering = {w.name: w for w in self._answering(destination)}
        snapshots = {}
        for name in sorted(destination):
            worker = answering.get(name)
            if worker is None:
                snapshots[name] = WorkerSnapshot(name=name, stats=None,
                                                 registered=None)
                continue
            snapshots[name] = WorkerSnapshot(
                name=name, stats=worker.stats(), active=tuple(worker.active),
                reserved=tuple(worker.reserved), scheduled=tuple(worker.scheduled),
                queues=tuple(sorted(worker.queues)),
                registered={k: dict(v) for k, v in worker.registered.items()} if detail else None,
            )
        return snapshots

    # --- taskops.broker ---------------------------------------------------------------------

    # Rules that read no broker (names, and the priorities the configured transport takes):
    # the fake answers with the real rule, so the two cannot differ.
    def _broker_celery_own_queue(self, name: str) -> bool:
        return _REAL_CELERY_OWN_QUEUE(name)

    def _broker_priority_range(self, queue: str) -> PriorityRange:
        return _REAL_PRIORITY_RANGE(queue)

    def _broker_broker_status(self, *, timeout: float | None = None) -> BrokerStatus:
        if not self.broker_up:
            return BrokerStatus(ok=False, transport="", latency_ms=None,
                                error="broker unreachable: [Errno 111] Connection refused (fake)")
        return BrokerStatus(ok=True, transport="redis", latency_ms=0.1)

    @staticmethod
    def _own_key(name: str) -> bool:
        return (name in _KOMBU_OWN_KEYS or name.startswith("_kombu.") or _SEP in name
                or name.endswith(".pidbox") or name.startswith("celeryev"))

    def _broker_queue_depths(self, names: Iterable[str], *, discover: bool = True,
                             timeout: float | None = None) -> BrokerReading:
        self._up()
        seen = sorted(q for q in self.declared if not self._own_key(q)) if discover else []
        queues = {}
        in_flight = tuple(sorted(
            (InFlightMessage(tag=tag, id=m.id, task=m.task, queue=queue, taken_at=taken, eta=m.eta)
             for tag, (m, queue, taken) in self.unacked.items()),
            key=lambda m: (m.taken_at, m.tag)))
        for name in sorted(set(names) | set(seen)):
            by_priority: dict[int, int] = {}
            for message in self.queues.get(name, []):
                by_priority[message.priority] = by_priority.get(message.priority, 0) + 1
            queues[name] = QueueDepth(name=name, depth=sum(by_priority.values()),
                                      by_priority=dict(sorted(by_priority.items())),
                                      in_flight=sum(1 for m in in_flight if m.queue == name))
        return BrokerReading(transport="redis", queues=queues, in_flight_total=len(in_flight),
                             seen_queues=tuple(seen), latency_ms=0.1, in_flight_messages=in_flight,
                             visibility_timeout=float(self._visibility_timeout()))

    @staticmethod
    def _visibility_timeout() -> float:
        options = celery_app().conf.broker_transport_options or {}
        return options.get("visibility_timeout", 3600)

    def _broker_unacked_restore(self, tags: list[str], *, timeout: float | None = None) -> int:
        self._up()
        restored = 0
        for tag in tags:
            if tag in self.unacked:
                message, queue, _taken = self.unacked.pop(tag)
                self.queues.setdefault(queue, []).insert(0, message)  # next in line, as kombu does
                restored += 1
        return restored

    def message_take(self, queue: str, *, taken_at: datetime | None = None) -> FakeMessage:
        """A consumer takes the next message of `queue` without acknowledging it (a worker that
        holds it, or one that died holding it: see task_running for what a worker reports)."""
        message = min(self.queues[queue], key=lambda m: m.priority)  # stable: oldest first
        self.queues[queue].remove(message)
        self.unacked[uuid.uuid4().hex] = (message, queue, taken_at or datetime.now(timezone.utc))
        return message

    def _broker_queue_peek(self, name: str, *, limit: int = 20,
                           timeout: float | None = None) -> list[WaitingMessage]:
        self._up()
        ordered = sorted(self.queues.get(name, []), key=lambda m: m.priority)  # stable: oldest first
        return [
            WaitingMessage(
                position=n, id=m.id, task=m.task, args=m.argsrepr[:1000], kwargs=m.kwargsrepr[:1000],
                eta=m.eta, expires=m.expires, retries=0, priority=m.priority,
                root_id=m.headers.get("root_id") or m.id, parent_id="")
            for n, m in enumerate(ordered[:limit], start=1)
        ]

    def _broker_queue_purge(self, name: str, *, timeout: float | None = None) -> int:
        self._up()
        if self._own_key(name):
            raise QueueNotPurgeable(f"{name!r} is one of the broker's own keys, not a task queue")
        removed = len(self.queues.get(name, []))
        self.queues[name] = []
        return removed

    # --- taskops.publish --------------------------------------------------------------------

    def _enqueue(self, *, task_id: str, name: str, args: list, kwargs: dict, queue: str,
                 priority: int | None, headers: dict, argsrepr: str | None = None,
                 kwargsrepr: str | None = None, eta: str = "", expires: str = "") -> None:
        step = PRIORITY_STEPS[bisect.bisect(PRIORITY_STEPS, priority or 0) - 1]
        self.declared.add(queue)
        self.queues.setdefault(queue, []).append(FakeMessage(
            id=task_id, task=name, args=list(args), kwargs=dict(kwargs),
            argsrepr=argsrepr if argsrepr is not None else saferepr(list(args)),
            kwargsrepr=kwargsrepr if kwargsrepr is not None else saferepr(dict(kwargs)),
            priority=step, headers={"root_id": task_id, **headers}, eta=eta, expires=expires))

    @staticmethod
    def _when(value, countdown=None) -> str:
        if countdown is not None:
            value = datetime.now(timezone.utc) + timedelta(seconds=float(countdown))
        if isinstance(value, (int, float)):
            value = datetime.now(timezone.utc) + timedelta(seconds=value)
        return value.isoformat() if isinstance(value, datetime) else str(value or "")

    def _publish_calls_publish(self, sends: Iterable[Send | tuple], *,
                               sent_events: bool | None = None, **options) -> None:
        sends = [s if isinstance(s, Send) else Send(*s) for s in sends]
        if not sends:
            return
        self._up()
        router = celery_app().amqp.router
        for send in sends:
            call = send.call
            queue = options.get("queue") or call.routing_key or None
            routed = router.route({"queue": queue} if queue else {}, call.task, call.args,
                                  call.kwargs)
            queue_name = getattr(routed.get("queue"), "name", routed.get("queue"))
            headers = {**call.headers, **({RETRY_OF_HEADER: send.original_id}
                                          if send.original_id else {})}
            self.sent.append((send, dict(options)))
            self._enqueue(task_id=send.task_id, name=call.task, args=call.args, kwargs=call.kwargs,
                          queue=queue_name, priority=options.get("priority", call.priority),
                          headers=headers, argsrepr=send.argsrepr, kwargsrepr=send.kwargsrepr,
                          eta=self._when(options.get("eta"), options.get("countdown")),
                          expires=self._when(options.get("expires")))

    def _publish_console_task_send(self, name: str, args: list, *, queue: str) -> None:
        self._up()
        self._enqueue(task_id=str(uuid.uuid4()), name=name, args=args, kwargs={}, queue=queue,
                      priority=None, headers={})

    def task_running(self, worker: str, task_id: str, name: str, args: list, kwargs: dict,
                     queue: str) -> TaskInfo:
        """Make `worker` run a task now, shown as `inspect active` shows it."""
        # As a worker answers `inspect active` asked with safe=True: the reprs, cut.
        info = TaskInfo(id=task_id, name=name, args=saferepr(list(args), 1000),
                        kwargs=saferepr(dict(kwargs), 1000), worker=worker,
                        started_at=datetime.now(timezone.utc), priority=0, queue=queue,
                        acknowledged=not celery_app().conf.task_acks_late, pid=self.workers[worker].processes[0])
        self.workers[worker].active.append(info)
        return info

    # --- Reading what was done --------------------------------------------------------------

    def commands_named(self, command: str) -> list[tuple[dict, tuple[str, ...] | None]]:
        return [(arguments, destination) for name, arguments, destination in self.commands
                if name == command]
