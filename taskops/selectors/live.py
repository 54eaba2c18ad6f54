"""Reads of the live cluster: queues, workers, beat and recent failures, as plain dataclasses."""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

from django.utils import timezone
from django_celery_results.models import TaskResult

from taskops import broker, cache, control, liveness
from taskops.conf import celery_app, config
from taskops.connection import BrokerUnavailable
from taskops.models import PendingRevoke, QueueDepthSample, QueuePause, QueueSeen, WorkerSeen

SPARKLINE_POINTS = 60
DISCOVERY_TIMEOUT = 0.6
DISCOVERY_TTL = 15.0
# When each worker last answered a reading: {name: datetime}, kept between readings (beat's
# sampler keeps the same in WorkerSeen.last_answered_at, so either one is enough).
ANSWERED_KEY = "taskops:workers:answered"
ANSWERED_KEEP_SECONDS = 86400


@dataclass(frozen=True)
class InFlightRow:
    """A message a worker took and has not acknowledged, and who holds it (taskops.liveness)."""

    message: broker.InFlightMessage
    kind: str  # liveness.HELD, UNCONFIRMED or STRANDED
    holder: str  # the worker that reports it ("" unless held)
    back_at: datetime | None  # when the broker's visibility timeout gives it back to its queue

    @property
    def stranded(self) -> bool:
        return self.kind == liveness.STRANDED


@dataclass(frozen=True)
class QueueRow:
    name: str
    depth: int | None
    by_priority: dict[int, int]
    in_flight: int | None  # taken by a worker and not acknowledged (the broker's count)
    consumers: tuple[str, ...]
    paused: bool
    paused_workers: tuple[str, ...] = ()
    history: tuple[int, ...] = ()
    stranded: int | None = None  # of those in flight, held by no worker (None: not known)
    stranded_since: datetime | None = None  # the oldest stranded message was taken then
    stranded_back_at: datetime | None = None  # the broker gives the first of them back then
    idle: bool = False  # nobody consumed it for TASKOPS_QUEUE_IDLE_HOURS, nothing in it
    last_consumed_at: datetime | None = None  # as beat's sampler last saw a worker consume it

    @property
    def state(self) -> str:
        """paused, consuming, no consumer or idle (what the State column says)."""
        if self.paused:
            return "paused"
        if self.consumers:
            return "consuming"
        return "idle" if self.idle else "no consumer"


@dataclass(frozen=True)
class WorkerRow:
    name: str
    status: str  # the state's name (taskops.liveness): "online", "not answering", "offline", ...
    snapshot: control.WorkerSnapshot | None
    last_seen_at: datetime | None
    queues: tuple[str, ...] = ()
    state: liveness.WorkerState | None = None
    facts: liveness.WorkerFacts | None = None

    @property
    def active_count(self) -> int | None:
        return len(self.snapshot.active) if self.snapshot and self.snapshot.answered else None

    @property
    def pool_size(self) -> int | None:
        stats = self.snapshot.stats if self.snapshot else None
        return len(stats.pool_processes) if stats else None

    @property
    def load_percent(self) -> int | None:
        """Busy share of the pool: running tasks over pool processes."""
        if self.active_count is None or not self.pool_size:
            return None
        return round(100 * self.active_count / self.pool_size)


@dataclass(frozen=True)
class ClusterReading:
    """One reading of the cluster, shared by every viewer for TASKOPS_LIVE_TTL seconds."""

    taken_at: datetime
    broker_ok: bool
    broker_error: str
    transport: str
    queues: tuple[QueueRow, ...]
    workers: tuple[WorkerRow, ...]
    in_flight_total: int | None
    latency_ms: float
    banners: tuple[str, ...] = field(default_factory=tuple)
    in_flight_note: str = ""  # why in-flight counts are unknown (RabbitMQ without its management API)
    # Every in-flight message and who holds it; None when the broker's list was not read.
    in_flight: tuple[InFlightRow, ...] | None = None
    visibility_timeout: float | None = None

    def queue(self, name: str) -> QueueRow | None:
        return next((q for q in self.queues if q.name == name), None)

    def worker(self, name: str) -> WorkerRow | None:
        return next((w for w in self.workers if w.name == name), None)

    @property
    def online_count(self) -> int:
        return sum(1 for w in self.workers if w.status == liveness.ONLINE)

    @property
    def listed_queues(self) -> tuple[QueueRow, ...]:
        """The queues of the main table: every queue but the idle ones."""
        return tuple(q for q in self.queues if not q.idle)

    @property
    def idle_queues(self) -> tuple[QueueRow, ...]:
        return tuple(q for q in self.queues if q.idle)

    @property
    def queue_idle_hours(self) -> float:
        return config.queue_idle_hours

    @property
    def stranded_total(self) -> int | None:
        return None if self.in_flight is None else sum(1 for m in self.in_flight if m.stranded)

    def in_flight_of(self, queue: str) -> tuple[InFlightRow, ...]:
        return tuple(m for m in self.in_flight or () if m.message.queue == queue)


def configured_queue_names() -> list[str]:
    """Queues named in the Celery configuration: declared queues, the default, and routes."""
    conf = celery_app().conf
    names = {conf.task_default_queue}
    names.update(q.name for q in conf.task_queues or [])
    routes = conf.task_routes or {}
    for route in routes.values() if isinstance(routes, dict) else []:
        if isinstance(route, dict) and route.get("queue"):
            queue = route["queue"]
            names.add(queue if isinstance(queue, str) else getattr(queue, "name", str(queue)))
    return sorted(n for n in names if n)


def _history(names: list[str]) -> dict[str, tuple[int, ...]]:
    """The last SPARKLINE_POINTS samples per queue, oldest first (one query)."""
    interval = config.sample_period
    since = timezone.now() - timedelta(seconds=interval * SPARKLINE_POINTS * 1.5)
    series: dict[str, list[int]] = {name: [] for name in names}
    rows = (
        QueueDepthSample.objects.filter(queue__in=names, sampled_at__gte=since)
        .order_by("sampled_at")
        .values_list("queue", "depth")
    )
    for queue, depth in rows:
        series[queue].append(depth)
    return {name: tuple(values[-SPARKLINE_POINTS:]) for name, values in series.items()}


def _discovered_workers() -> list[str]:
    """Workers that answer a broadcast ping, shared across viewers for DISCOVERY_TTL seconds."""
    return cache.shared_value(
        "taskops:discovered", DISCOVERY_TTL, lambda: control.worker_discover(timeout=DISCOVERY_TIMEOUT)
    )


def worker_answers_remembered() -> dict[str, datetime]:
    """When each worker last answered a reading of the console ({} when the cache is down)."""
    found = cache.values_get([ANSWERED_KEY]).get(ANSWERED_KEY)
    return dict(found) if isinstance(found, dict) else {}


def _latest(*moments: datetime | None) -> datetime | None:
    return max((m for m in moments if m is not None), default=None)


def worker_facts(row: WorkerSeen | None, snapshot: control.WorkerSnapshot | None,
                  answered_at: datetime | None, *, broker_ok: bool) -> liveness.WorkerFacts:
    """What the console knows of a worker: this reading's answer, its own words, its last answers."""
    answered = bool(snapshot and snapshot.answered) if broker_ok else None
    stats = snapshot.stats if snapshot and snapshot.answered else None
    if row is None:
        return liveness.WorkerFacts(answered=answered, last_answered_at=answered_at,
                                    uptime_seconds=stats.uptime_seconds if stats else None)
    # A row kept before workers said when they started: its last sighting was an answer.
    legacy = row.last_seen_at if row.started_at is None and row.goodbye_at is None else None
    return liveness.WorkerFacts(
        answered=answered,
        uptime_seconds=stats.uptime_seconds if stats else None,
        started_at=row.started_at,
        ready_at=row.ready_at,
        last_answered_at=_latest(row.last_answered_at, answered_at, legacy),
        stopping_since=row.stopping_since,
        goodbye_at=row.goodbye_at,
    )


def _worker_row(name: str, row: WorkerSeen | None, snapshot: control.WorkerSnapshot | None,
                answered_at: datetime | None, *, broker_ok: bool, now: datetime) -> WorkerRow:
    facts = worker_facts(row, snapshot, answered_at, broker_ok=broker_ok)
    state = liveness.worker_state(facts, now=now)
    answered = bool(snapshot and snapshot.answered)
    last_seen = now if answered else _latest(facts.last_answered_at, facts.goodbye_at,
                                             facts.stopping_since, facts.ready_at, facts.started_at,
                                             row.last_seen_at if row else None)
    return WorkerRow(
        name=name, status=state.state, snapshot=snapshot, last_seen_at=last_seen,
        queues=snapshot.queues if answered else tuple(row.queues if row else ()),
        state=state, facts=facts,
    )


def _in_flight_rows(reading: broker.BrokerReading | None, snapshots: dict[str, control.WorkerSnapshot],
                    workers: list[WorkerRow], read_started: datetime) -> tuple[InFlightRow, ...] | None:
    """Each in-flight message with who holds it: a worker that reported it, maybe one that did not
    answer, or nobody (stranded: it comes back only with the broker's visibility timeout)."""
    if reading is None or reading.in_flight_messages is None:
        return None
    holders = {task_id: name for name, snapshot in sorted(snapshots.items()) if snapshot.answered
               for task_id in snapshot.held_ids}
    silent_queues = [w.queues for w in workers if w.state is not None and w.state.may_hold_unreported]
    visibility = reading.visibility_timeout
    rows = []
    for message in reading.in_flight_messages:
        kind = liveness.in_flight_kind(message.id, message.queue, message.taken_at,
                                       held_ids=frozenset(holders), silent_queues=silent_queues,
                                       read_started=read_started)
        back_at = (message.taken_at + timedelta(seconds=visibility)
                   if message.taken_at is not None and visibility else None)
        rows.append(InFlightRow(message=message, kind=kind, back_at=back_at,
                                holder=holders.get(message.id, "") if kind == liveness.HELD else ""))
    return tuple(rows)


def _queue_row(name: str, depth: broker.QueueDepth | None, *, consumers: list[str],
               pause: QueuePause | None, seen: QueueSeen | None, history: tuple[int, ...],
               in_flight: tuple[InFlightRow, ...] | None, now: datetime) -> QueueRow:
    stranded = ([m for m in in_flight if m.message.queue == name and m.stranded]
                if in_flight is not None else None)
    row = QueueRow(
        name=name,
        depth=depth.depth if depth else None,
        by_priority=depth.by_priority if depth else {},
        in_flight=depth.in_flight if depth else None,
        consumers=tuple(sorted(consumers)),
        paused=pause is not None,
        paused_workers=tuple(pause.workers) if pause else (),
        history=history,
        stranded=len(stranded) if stranded is not None else None,
        stranded_since=min((m.message.taken_at for m in stranded or () if m.message.taken_at),
                           default=None),
        stranded_back_at=min((m.back_at for m in stranded or () if m.back_at), default=None),
        last_consumed_at=seen.last_consumed_at if seen else None,
    )
    idle = liveness.queue_idle(
        consumers=len(consumers), paused=row.paused, waiting=row.depth, in_flight=row.in_flight,
        first_seen_at=seen.first_seen_at if seen else None,
        last_consumed_at=seen.last_consumed_at if seen else None, now=now)
    return dataclasses.replace(row, idle=idle)


def _read_cluster() -> ClusterReading:
    seen = {w.name: w for w in WorkerSeen.objects.all()}
    pauses = {p.queue: p for p in QueuePause.objects.all()}
    queues_seen = {q.queue: q for q in QueueSeen.objects.all()}
    answered_at = worker_answers_remembered()
    banners: list[str] = []
    broker_ok, broker_error = True, ""
    reading: broker.BrokerReading | None = None
    snapshots: dict[str, control.WorkerSnapshot] = {}
    names = sorted(set(configured_queue_names()) | set(pauses))
    read_started = timezone.now()
    try:
        believed_online = {name for name, w in seen.items() if w.online}
        with ThreadPoolExecutor(max_workers=2) as pool:
            discovery = pool.submit(_discovered_workers)
            known = pool.submit(control.worker_snapshots, sorted(believed_online))
            snapshots = dict(known.result())
            new = sorted(set(discovery.result()) - believed_online)
        if new:
            snapshots.update(control.worker_snapshots(new))
        # The broker after the workers: a message a worker took after it answered is "just
        # taken" (liveness.in_flight_kind), never mistaken for a stranded one.
        reading = broker.queue_depths(names)
        # Every queue a worker consumes is shown, configured or not (RabbitMQ lists no bindings).
        unread = sorted({q for snap in snapshots.values() for q in snap.queues} - set(reading.queues))
        if unread:
            reading = dataclasses.replace(reading, queues={
                **reading.queues, **broker.queue_depths(unread, discover=False).queues})
    except BrokerUnavailable as exc:
        broker_ok, broker_error = False, str(exc)
        banners.append(
            f"The broker is not answering ({exc}). Queue depths and worker states are unknown; "
            "what is shown below comes from the console's own records."
        )
    now = timezone.now()
    answering = sorted(name for name, snapshot in snapshots.items() if snapshot.answered)
    if answering:
        answered_at.update(dict.fromkeys(answering, now))
        cache.values_set({ANSWERED_KEY: answered_at}, timeout=ANSWERED_KEEP_SECONDS)
    workers = [_worker_row(name, seen.get(name), snapshots.get(name), answered_at.get(name),
                           broker_ok=broker_ok, now=now)
               for name in sorted(set(seen) | set(snapshots))]
    in_flight = _in_flight_rows(reading, snapshots, workers, read_started)
    consumers: dict[str, list[str]] = {}
    for name in answering:
        for queue in snapshots[name].queues:
            consumers.setdefault(queue, []).append(name)
    depths = reading.queues if reading else {}
    all_queue_names = sorted(set(names) | set(depths))
    history = _history(all_queue_names)
    queues = tuple(
        _queue_row(name, depths.get(name), consumers=consumers.get(name, []), pause=pauses.get(name),
                   seen=queues_seen.get(name), history=history.get(name, ()), in_flight=in_flight,
                   now=now)
        for name in all_queue_names
    )
    silent = [w.name for w in workers if w.status == liveness.NOT_ANSWERING]
    if silent:
        banners.append(
            f"Not answering within {config.control_timeout:.1f} s: {', '.join(silent)} "
            f"(busy or frozen; a worker silent for {config.worker_offline_after_seconds:g} s "
            "counts as offline)."
        )
    return ClusterReading(
        taken_at=now,
        broker_ok=broker_ok,
        broker_error=broker_error,
        transport=reading.transport if reading else "",
        queues=queues,
        workers=tuple(workers),
        in_flight_total=reading.in_flight_total if reading else None,
        latency_ms=reading.latency_ms if reading else 0.0,
        banners=tuple(banners),
        in_flight_note=reading.in_flight_note if reading else "",
        in_flight=in_flight,
        visibility_timeout=reading.visibility_timeout if reading else None,
    )


def stranded_now(queue: str) -> tuple[InFlightRow, ...] | None:
    """The messages of `queue` stranded right now, from a fresh reading (not the shared one);
    None when that cannot be told (not Redis, or too many in flight to read). Raises BrokerUnavailable."""
    reading = _read_cluster()
    if not reading.broker_ok:
        raise BrokerUnavailable(reading.broker_error)
    if reading.in_flight is None:
        return None
    return tuple(m for m in reading.in_flight_of(queue) if m.stranded)


def cluster_reading() -> ClusterReading:
    """The current cluster reading: computed by one viewer per period, shared with the rest."""
    ttl = config.live_ttl
    return cache.shared_value(cache.LIVE_KEY, ttl, _read_cluster)


def queue_known(name: str) -> bool:
    """True when `name` is a queue the console knows: configured, paused, seen in the broker or consumed."""
    reading = cluster_reading()
    return (reading.queue(name) is not None
            or any(name in worker.queues for worker in reading.workers)
            or name in configured_queue_names()
            or QueuePause.objects.filter(queue=name).exists())


def queue_refusal(name: str) -> str:
    """Why the console may not send to, pause or purge queue `name` ("" when it may): it must be a
    queue the console knows, and never one of Celery's own (remote control and replies, events)."""
    if broker.celery_own_queue(name):
        return f"{name!r} is one of Celery's own queues (remote control, replies or events), not a task queue."
    if not name or not queue_known(name):
        return (f"There is no queue {name!r}: it is not configured, consumed by a worker, paused, "
                "or seen in the broker.")
    return ""


@dataclass(frozen=True)
class FailureRow:
    task_id: str
    task_name: str
    worker: str
    date_done: datetime | None
    periodic_task_name: str


def failure_recent(*, limit: int = 8) -> list[FailureRow]:
    """The newest failed runs (no count, no tracebacks loaded)."""
    rows = (
        TaskResult.objects.filter(status="FAILURE")
        .order_by("-date_done")
        .values_list("task_id", "task_name", "worker", "date_done", "periodic_task_name")[:limit]
    )
    return [
        FailureRow(task_id, task_name or "", worker or "", done, periodic or "")
        for task_id, task_name, worker, done, periodic in rows
    ]


@dataclass(frozen=True)
class PeekRow:
    """A waiting message as the queue page shows it: ready, waiting for its ETA, expired, revoked."""

    message: broker.WaitingMessage
    revoked: bool  # the console keeps a revoke of it: the worker that takes it discards it
    eta_at: datetime | None

    @property
    def waits_for_eta(self) -> bool:
        """Its ETA (or countdown) is ahead: a worker takes it and holds it until then."""
        return self.eta_at is not None and self.eta_at > timezone.now()


@dataclass(frozen=True)
class QueueDetail:
    row: QueueRow | None
    reading: ClusterReading
    waiting: tuple[PeekRow, ...]
    peek_error: str
    pause: QueuePause | None
    history: tuple[tuple[datetime, int], ...]
    in_flight: tuple[InFlightRow, ...] = ()

    @property
    def history_depths(self) -> tuple[int, ...]:
        return tuple(depth for _at, depth in self.history)

    @property
    def peak(self) -> int:
        return max(self.history_depths, default=0)

    @property
    def stranded(self) -> tuple[InFlightRow, ...]:
        return tuple(m for m in self.in_flight if m.stranded)


def _moment(text: str) -> datetime | None:
    """An ISO 8601 time from a message header (naive: UTC); None when there is none or it is not one."""
    try:
        moment = datetime.fromisoformat(text) if text else None
    except ValueError:
        return None
    if moment is not None and timezone.is_naive(moment):
        moment = moment.replace(tzinfo=dt_timezone.utc)
    return moment


def _peek_rows(messages: list[broker.WaitingMessage]) -> tuple[PeekRow, ...]:
    revoked = set(PendingRevoke.objects.filter(task_id__in=[m.id for m in messages if m.id])
                  .values_list("task_id", flat=True))
    return tuple(PeekRow(message=m, revoked=m.id in revoked, eta_at=_moment(m.eta)) for m in messages)


def queue_detail(name: str, *, peek: int = 20) -> QueueDetail:
    """One queue: its live row, the next messages (not consumed; revoked and ETA ones told apart),
    its in-flight messages and who holds them, pause state and 24 h history."""
    reading = cluster_reading()
    waiting: list[broker.WaitingMessage] = []
    peek_error = ""
    if reading.broker_ok:
        try:
            waiting = broker.queue_peek(name, limit=peek)
        except BrokerUnavailable as exc:
            peek_error = str(exc)
    samples = (
        QueueDepthSample.objects.filter(queue=name, sampled_at__gte=timezone.now() - timedelta(hours=24))
        .order_by("sampled_at")
        .values_list("sampled_at", "depth")
    )
    points = list(samples)
    step = max(1, len(points) // 240)
    return QueueDetail(
        row=reading.queue(name),
        reading=reading,
        waiting=_peek_rows(waiting),
        peek_error=peek_error,
        pause=QueuePause.objects.filter(queue=name).first(),
        history=tuple(points[::step]),
        in_flight=reading.in_flight_of(name),
    )


@dataclass(frozen=True)
class WorkerDetail:
    name: str
    reading: ClusterReading
    row: WorkerRow | None
    snapshot: control.WorkerSnapshot | None
    error: str
    pending_revokes: tuple[PendingRevoke, ...]
    state: liveness.WorkerState | None = None  # from this page's own answer, by the list's rules


def worker_detail(name: str) -> WorkerDetail:
    """One worker in full: its state, stats, registered tasks with rate limits, active/reserved/scheduled."""
    reading = cluster_reading()
    error = ""
    snapshot = None
    if reading.broker_ok:
        try:
            snapshot = control.worker_snapshots([name], detail=True).get(name)
        except BrokerUnavailable as exc:
            error = str(exc)
    else:
        error = reading.broker_error
    row = reading.worker(name)
    stats = snapshot.stats if snapshot and snapshot.answered else None
    state = None
    if stats is not None or (row is not None and row.facts is not None):  # else: never seen
        known = row.facts if row is not None and row.facts is not None else liveness.WorkerFacts(None)
        facts = dataclasses.replace(known, answered=bool(stats) if not error else None,
                                    uptime_seconds=stats.uptime_seconds if stats else None)
        state = liveness.worker_state(facts, now=timezone.now())
    revokes = tuple(PendingRevoke.objects.order_by("-requested_at")[:20])
    return WorkerDetail(name=name, reading=reading, row=row, snapshot=snapshot, error=error,
                        pending_revokes=revokes, state=state)
