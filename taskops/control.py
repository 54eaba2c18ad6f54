"""The one module that talks to Celery's remote control: bounded calls, dataclasses out."""

from __future__ import annotations

from dataclasses import dataclass, field

from taskops.conf import celery_app, control_timeout
from taskops.connection import BrokerUnavailable, broker_connection

__all__ = ["BrokerUnavailable", "WorkerPing", "WorkerStats", "worker_ping", "worker_stats"]


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

    @property
    def processed(self) -> int:
        """How many tasks the worker has received since it started, all task types together."""
        return sum(self.total_tasks.values())


def _limit(destination: list[str] | None) -> int | None:
    """Replies to wait for: with named workers, return as soon as each has answered."""
    return len(destination) if destination else None


def worker_ping(*, destination: list[str] | None = None, timeout: float | None = None) -> list[WorkerPing]:
    """Ping workers (all, or the named ones); an empty list means no worker answered in time."""
    timeout = control_timeout() if timeout is None else timeout
    with broker_connection() as conn:
        replies = celery_app().control.ping(
            destination=destination, timeout=timeout, connection=conn, limit=_limit(destination)
        )
    pings = []
    for reply in replies or []:
        for name, answer in reply.items():
            pings.append(WorkerPing(name=name, ok=answer.get("ok") == "pong"))
    return sorted(pings, key=lambda p: p.name)


def _stats_from_reply(name: str, reply: dict) -> WorkerStats:
    pool = reply.get("pool") or {}
    implementation = str(pool.get("implementation") or "").rsplit(":", 1)[-1]
    return WorkerStats(
        name=name,
        pid=reply.get("pid"),
        pool_implementation=implementation,
        pool_max_concurrency=pool.get("max-concurrency"),
        pool_processes=tuple(pool.get("processes") or ()),
        prefetch_count=reply.get("prefetch_count"),
        uptime_seconds=reply.get("uptime"),
        total_tasks=dict(reply.get("total") or {}),
    )


def worker_stats(
    *, destination: list[str] | None = None, timeout: float | None = None
) -> dict[str, WorkerStats]:
    """Return `inspect().stats()` per worker; workers that did not answer are absent."""
    timeout = control_timeout() if timeout is None else timeout
    with broker_connection() as conn:
        inspector = celery_app().control.inspect(
            destination=destination, timeout=timeout, connection=conn, limit=_limit(destination)
        )
        replies = inspector.stats() or {}
    return {name: _stats_from_reply(name, reply) for name, reply in sorted(replies.items())}
