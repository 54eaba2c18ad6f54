"""Reads of the live cluster: queues, workers, beat and recent failures, as plain dataclasses."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.utils import timezone
from django_celery_results.models import TaskResult

from taskops import broker, cache, control
from taskops.conf import celery_app, config
from taskops.connection import BrokerUnavailable
from taskops.models import PendingRevoke, QueueDepthSample, QueuePause, WorkerSeen

SPARKLINE_POINTS = 60
DISCOVERY_TIMEOUT = 0.6
DISCOVERY_TTL = 15.0


@dataclass(frozen=True)
class QueueRow:
    name: str
    depth: int | None
    by_priority: dict[int, int]
    in_flight: int | None
    consumers: tuple[str, ...]
    paused: bool
    paused_workers: tuple[str, ...] = ()
    history: tuple[int, ...] = ()


@dataclass(frozen=True)
class WorkerRow:
    name: str
    status: str  # "online", "not answering" or "offline"
    snapshot: control.WorkerSnapshot | None
    last_seen_at: datetime | None
    queues: tuple[str, ...] = ()

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

    def queue(self, name: str) -> QueueRow | None:
        return next((q for q in self.queues if q.name == name), None)

    def worker(self, name: str) -> WorkerRow | None:
        return next((w for w in self.workers if w.name == name), None)

    @property
    def online_count(self) -> int:
        return sum(1 for w in self.workers if w.status == "online")


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


def _read_cluster() -> ClusterReading:
    seen = {w.name: w for w in WorkerSeen.objects.all()}
    pauses = {p.queue: p for p in QueuePause.objects.all()}
    banners: list[str] = []
    broker_ok, broker_error, transport = True, "", ""
    depths: dict[str, broker.QueueDepth] = {}
    snapshots: dict[str, control.WorkerSnapshot] = {}
    in_flight_total: int | None = None
    in_flight_note = ""
    latency = 0.0
    names = sorted(set(configured_queue_names()) | set(pauses))
    try:
        reading = broker.queue_depths(names)
        depths, transport = reading.queues, reading.transport
        in_flight_total, latency = reading.in_flight_total, reading.latency_ms
        in_flight_note = reading.in_flight_note
        believed_online = {name for name, w in seen.items() if w.online}
        with ThreadPoolExecutor(max_workers=2) as pool:
            discovery = pool.submit(_discovered_workers)
            known = pool.submit(control.worker_snapshots, sorted(believed_online))
            snapshots = dict(known.result())
            new = sorted(set(discovery.result()) - believed_online)
        if new:
            snapshots.update(control.worker_snapshots(new))
        # Every queue a worker consumes is shown, configured or not (RabbitMQ lists no bindings).
        unread = sorted({q for snap in snapshots.values() for q in snap.queues} - set(depths))
        if unread:
            depths = {**depths, **broker.queue_depths(unread, discover=False).queues}
    except BrokerUnavailable as exc:
        broker_ok, broker_error = False, str(exc)
        banners.append(
            f"The broker is not answering ({exc}). Queue depths and worker states are unknown; "
            "what is shown below comes from the console's own records."
        )
    consumers: dict[str, list[str]] = {}
    for snap in snapshots.values():
        for queue in snap.queues:
            consumers.setdefault(queue, []).append(snap.name)
    all_queue_names = sorted(set(names) | set(depths))
    history = _history(all_queue_names)
    queues = tuple(
        QueueRow(
            name=name,
            depth=depths[name].depth if name in depths else None,
            by_priority=depths[name].by_priority if name in depths else {},
            in_flight=depths[name].in_flight if name in depths else None,
            consumers=tuple(sorted(consumers.get(name, []))),
            paused=name in pauses,
            paused_workers=tuple(pauses[name].workers) if name in pauses else (),
            history=history.get(name, ()),
        )
        for name in all_queue_names
    )
    workers = []
    for name in sorted(set(seen) | set(snapshots)):
        snap = snapshots.get(name)
        row = seen.get(name)
        if snap and snap.answered:
            status = "online"
        elif row and not row.online:
            status = "offline"
        elif broker_ok:
            status = "not answering"
        else:
            status = "unknown"
        workers.append(
            WorkerRow(
                name=name,
                status=status,
                snapshot=snap,
                last_seen_at=timezone.now() if status == "online" else (row.last_seen_at if row else None),
                queues=snap.queues if snap and snap.answered else tuple(row.queues if row else ()),
            )
        )
    silent = [w.name for w in workers if w.status == "not answering"]
    if silent:
        banners.append(
            f"Not answering within {config.control_timeout:.1f} s: {', '.join(silent)} "
            "(busy, frozen or gone without saying so)."
        )
    return ClusterReading(
        taken_at=timezone.now(),
        broker_ok=broker_ok,
        broker_error=broker_error,
        transport=transport,
        queues=queues,
        workers=tuple(workers),
        in_flight_total=in_flight_total,
        latency_ms=latency,
        banners=tuple(banners),
        in_flight_note=in_flight_note,
    )


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
class QueueDetail:
    row: QueueRow | None
    reading: ClusterReading
    waiting: tuple[broker.WaitingMessage, ...]
    peek_error: str
    pause: QueuePause | None
    history: tuple[tuple[datetime, int], ...]

    @property
    def history_depths(self) -> tuple[int, ...]:
        return tuple(depth for _at, depth in self.history)

    @property
    def peak(self) -> int:
        return max(self.history_depths, default=0)


def queue_detail(name: str, *, peek: int = 20) -> QueueDetail:
    """One queue: its live row, the next messages (not consumed), pause state and 24 h history."""
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
        waiting=tuple(waiting),
        peek_error=peek_error,
        pause=QueuePause.objects.filter(queue=name).first(),
        history=tuple(points[::step]),
    )


@dataclass(frozen=True)
class WorkerDetail:
    name: str
    reading: ClusterReading
    row: WorkerRow | None
    snapshot: control.WorkerSnapshot | None
    error: str
    pending_revokes: tuple[PendingRevoke, ...]


def worker_detail(name: str) -> WorkerDetail:
    """One worker in full: stats, registered tasks with rate limits, active/reserved/scheduled."""
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
    revokes = tuple(PendingRevoke.objects.order_by("-requested_at")[:20])
    return WorkerDetail(
        name=name, reading=reading, row=reading.worker(name), snapshot=snapshot, error=error, pending_revokes=revokes
    )
