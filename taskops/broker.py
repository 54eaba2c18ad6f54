"""The one module that reads the broker itself: reachability, queue depths, in-flight messages, peeks, purges and restores."""

from __future__ import annotations

import base64
import dataclasses
import json
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import redis
from amqp.exceptions import NotFound
from kombu.transport import virtual

from taskops.conf import celery_app, config
from taskops.connection import BROKER_ERRORS, BrokerUnavailable, broker_connection
from taskops.masking import repr_mask, value_mask

__all__ = [
    "BrokerReading",
    "BrokerStatus",
    "InFlightMessage",
    "PriorityRange",
    "celery_own_queue",
    "priority_range",
    "QueueDepth",
    "WaitingMessage",
    "broker_status",
    "queue_depths",
    "queue_peek",
    "queue_purge",
    "QueueNotPurgeable",
    "unacked_restore",
]

# Celery's own plumbing (events, remote control replies) is not a task queue.
_INTERNAL_EXCHANGES = {"celeryev", "celery.pidbox", "reply.celery.pidbox"}
# Reading every in-flight message to count them per queue stops being cheap past this many.
UNACKED_DETAIL_LIMIT = 1000


def celery_own_queue(name: str) -> bool:
    """True for the plumbing of Celery and kombu, never a task queue: remote control (`*.pidbox`,
    replies included), event queues (`celeryev*`) and kombu's own keys."""
    return (name.endswith(".pidbox") or name.startswith(("celeryev", "_kombu.")) or "\x06\x16" in name
            or name in _INTERNAL_EXCHANGES)


@dataclass(frozen=True)
class PriorityRange:
    """The message priorities a queue takes on this broker, and what they mean there."""

    low: int
    high: int
    note: str

    def refusal(self, priority: int | None) -> str:
        """Why `priority` does not fit ("" when it does, or when none is given)."""
        if priority is None or self.low <= priority <= self.high:
            return ""
        return f"Priority must be {self.low}–{self.high} here: {self.note}."


def priority_range(queue: str) -> PriorityRange:
    """The priorities a message to `queue` may carry, from the broker's transport (no connection).

    Redis (and kombu's other virtual transports): kombu's priorities, 0–9, 0 taken first.
    RabbitMQ: the queue's x-max-priority as the Celery configuration declares it (higher is
    more urgent); without one, 0–255 is what AMQP carries, and the queue ignores priorities.
    """
    app = celery_app()
    conn = app.connection_for_write()
    try:
        transport = conn.transport
    finally:
        conn.release()
    if isinstance(transport, virtual.Transport):
        channel = transport.Channel
        return PriorityRange(channel.min_priority, channel.max_priority,
                             f"kombu's {transport.driver_type} transport takes priorities "
                             f"{channel.min_priority}–{channel.max_priority}, "
                             f"{channel.min_priority} the most urgent")
    declared = next((q.queue_arguments or {} for q in app.conf.task_queues or () if q.name == queue),
                    {}).get("x-max-priority") or app.conf.task_queue_max_priority
    if declared:
        return PriorityRange(0, int(declared), f"queue {queue} is declared with x-max-priority "
                                               f"{declared} ({declared} the most urgent)")
    return PriorityRange(0, 255, f"AMQP carries 0–255, but queue {queue} is not declared with "
                                 "x-max-priority in the configuration, so it may ignore priorities")


class QueueNotPurgeable(Exception):
    """The name is not a task queue in this broker: missing (RabbitMQ) or one of kombu's own keys (Redis)."""


@dataclass(frozen=True)
class BrokerStatus:
    """Whether the broker answered, how fast, and what it is (never its URL or credentials)."""

    ok: bool
    transport: str
    latency_ms: float | None
    error: str = ""


@dataclass(frozen=True)
class QueueDepth:
    """Messages waiting in one queue (all priority levels) and, where known, in flight."""

    name: str
    depth: int | None
    by_priority: dict[int, int] = field(default_factory=dict)
    in_flight: int | None = None
    consumers: int | None = None
    exists: bool = True


@dataclass(frozen=True)
class InFlightMessage:
    """A message a worker took and has not acknowledged (Redis: kombu's unacked hash and its index)."""

    tag: str  # kombu's delivery tag: the message's key in the unacked hash
    id: str  # the task id
    task: str
    queue: str  # the routing key it was taken with
    taken_at: datetime | None  # when a worker took it (the worker's clock), None when not indexed
    eta: str = ""


@dataclass(frozen=True)
class BrokerReading:
    """One round trip's worth of queue depths."""

    transport: str
    queues: dict[str, QueueDepth]
    in_flight_total: int | None
    seen_queues: tuple[str, ...] = ()
    latency_ms: float = 0.0
    # Why the in-flight counts are unknown ("" when they are known).
    in_flight_note: str = ""
    # Every in-flight message (Redis, up to UNACKED_DETAIL_LIMIT); None when not read.
    in_flight_messages: tuple[InFlightMessage, ...] | None = None
    # Seconds after which the broker gives an unacknowledged message back (Redis); None: it does not.
    visibility_timeout: float | None = None


@dataclass(frozen=True)
class WaitingMessage:
    """A message waiting in a queue, read without consuming it."""

    position: int
    id: str
    task: str
    args: str
    kwargs: str
    eta: str
    expires: str
    retries: int
    priority: int | None
    root_id: str
    parent_id: str


def _transport_name(conn) -> str:
    return conn.transport.driver_type if hasattr(conn.transport, "driver_type") else ""


def broker_status(*, timeout: float | None = None) -> BrokerStatus:
    """Open a fresh connection and round-trip to the broker within the console's bound."""
    started = time.monotonic()
    transport = ""
    try:
        with broker_connection(timeout=timeout) as conn:
            transport = _transport_name(conn)
            channel = conn.default_channel
            client = getattr(channel, "client", None)
            if client is not None and hasattr(client, "ping"):
                client.ping()  # Redis: a real round trip, not just a TCP handshake
    except BrokerUnavailable as exc:
        return BrokerStatus(ok=False, transport=transport, latency_ms=None, error=str(exc))
    return BrokerStatus(
        ok=True, transport=transport, latency_ms=round((time.monotonic() - started) * 1000, 1)
    )


# --- Redis ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _RedisLayout:
    """Where kombu's Redis transport keeps a queue: a list per priority step, a prefix, unacked."""

    prefix: str
    sep: str
    steps: tuple[int, ...]
    unacked: str
    unacked_index: str
    bindings: str

    def keys(self, queue: str) -> list[tuple[int, str]]:
        """(priority step, key) for each list of `queue`, in the order workers take them."""
        return [
            (step, f"{self.prefix}{queue}{self.sep}{step}" if step else f"{self.prefix}{queue}")
            for step in self.steps
        ]


def _redis_layout(channel) -> _RedisLayout:
    prefix = channel.global_keyprefix or ""
    return _RedisLayout(
        prefix=prefix,
        sep=channel.sep,
        steps=tuple(sorted(channel.priority_steps)),
        unacked=prefix + channel.unacked_key,
        unacked_index=prefix + channel.unacked_index_key,
        bindings=prefix + channel.keyprefix_queue.replace("%s", ""),
    )


def _redis_client(channel) -> redis.Redis:
    """A plain client on the channel's pool: keys are spelled out in full, prefix included."""
    return redis.Redis(connection_pool=channel.pool)


def _redis_seen_queues(client: redis.Redis, layout: _RedisLayout) -> list[str]:
    keys = [
        key.decode() if isinstance(key, bytes) else key
        for key in client.scan_iter(match=layout.bindings + "*", count=1000)
    ]
    exchanges = [k for k in keys if k[len(layout.bindings):] not in _INTERNAL_EXCHANGES]
    if not exchanges:
        return []
    pipe = client.pipeline(transaction=False)
    for key in exchanges:
        pipe.smembers(key)
    names = set()
    for members in pipe.execute():
        for member in members:
            text = member.decode() if isinstance(member, bytes) else member
            queue = text.split(layout.sep)[-1]
            if queue and not celery_own_queue(queue):
                names.add(queue)
    return sorted(names)


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def _in_flight_message(tag: str, raw: bytes | str, score: float | None) -> InFlightMessage | None:
    """One entry of the unacked hash ([message, exchange, routing key]); None when unreadable."""
    try:
        message, _exchange, routing_key = json.loads(raw)
    except (ValueError, TypeError):
        return None
    headers = _object(_object(message).get("headers"))
    return InFlightMessage(
        tag=tag,
        id=str(headers.get("id") or ""),
        task=str(headers.get("task") or ""),
        queue=str(routing_key or ""),
        taken_at=datetime.fromtimestamp(score, tz=timezone.utc) if score is not None else None,
        eta=str(headers.get("eta") or ""),
    )


def _redis_in_flight(client: redis.Redis, layout: _RedisLayout
                     ) -> tuple[int, tuple[InFlightMessage, ...] | None]:
    """Total unacked messages and, when few enough to read, each of them with when it was taken."""
    total = int(client.hlen(layout.unacked))
    if total == 0:
        return 0, ()
    if total > UNACKED_DETAIL_LIMIT:
        return total, None
    pipe = client.pipeline(transaction=False)
    pipe.hgetall(layout.unacked)
    pipe.zrange(layout.unacked_index, 0, -1, withscores=True)
    entries, index = pipe.execute()
    taken = {_text(tag): score for tag, score in index}
    messages = (_in_flight_message(_text(tag), raw, taken.get(_text(tag)))
                for tag, raw in entries.items())
    found = tuple(sorted((m for m in messages if m is not None),
                         key=lambda m: (m.taken_at is None, m.taken_at or 0, m.tag)))
    return len(entries), found


def _redis_depths(conn, names: list[str], *, discover: bool) -> BrokerReading:
    channel = conn.default_channel
    layout = _redis_layout(channel)
    client = _redis_client(channel)
    seen = ([name for name in _redis_seen_queues(client, layout) if not _redis_own_key(channel, name)]
            if discover else [])
    all_names = sorted(set(names) | set(seen))
    pipe = client.pipeline(transaction=False)
    for name in all_names:
        for _step, key in layout.keys(name):
            pipe.llen(key)
    # A key of another type under a queue's name is no queue: it reads as empty, not as an error.
    lengths = iter(n if isinstance(n, int) else 0 for n in pipe.execute(raise_on_error=False))
    in_flight_total, in_flight = _redis_in_flight(client, layout)
    per_queue = Counter(m.queue for m in in_flight) if in_flight is not None else None
    queues = {}
    for name in all_names:
        by_priority = {step: int(next(lengths)) for step, _key in layout.keys(name)}
        queues[name] = QueueDepth(
            name=name,
            depth=sum(by_priority.values()),
            by_priority={step: n for step, n in by_priority.items() if n},
            in_flight=per_queue.get(name, 0) if per_queue is not None else None,
        )
    return BrokerReading(
        transport="redis", queues=queues, in_flight_total=in_flight_total, seen_queues=tuple(seen),
        in_flight_messages=in_flight, visibility_timeout=float(channel.visibility_timeout),
    )


def _decode_body(entry: dict) -> tuple[object, object]:
    try:
        body = entry.get("body", "")
        if _object(entry.get("properties")).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        args, kwargs, _embed = json.loads(body)
        return args, kwargs
    except (ValueError, TypeError):
        return None, None


def _object(value) -> dict:
    """`value` when it is a JSON object, else an empty one (a sender may put anything in a queue)."""
    return value if isinstance(value, dict) else {}


def _count(value) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _waiting_message(position: int, raw: bytes | str, step: int) -> WaitingMessage:
    try:
        entry = _object(json.loads(raw))
    except (ValueError, TypeError):
        entry = {}
    headers = _object(entry.get("headers"))
    properties = _object(entry.get("properties"))
    # The sender's reprs (it may have masked them), else the body's values; masked by key.
    args, kwargs = headers.get("argsrepr"), headers.get("kwargsrepr")
    if args is None or kwargs is None:
        body_args, body_kwargs = _decode_body(entry)
        args = repr(value_mask(body_args)) if args is None else args
        kwargs = repr(value_mask(body_kwargs)) if kwargs is None else kwargs
    priority = properties.get("priority")
    return WaitingMessage(
        position=position,
        id=str(headers.get("id") or properties.get("correlation_id") or ""),
        task=str(headers.get("task") or ""),
        args=repr_mask(str(args))[:1000],
        kwargs=repr_mask(str(kwargs))[:1000],
        eta=str(headers.get("eta") or ""),
        expires=str(headers.get("expires") or ""),
        retries=_count(headers.get("retries")),
        priority=priority if priority is not None else step,
        root_id=str(headers.get("root_id") or ""),
        parent_id=str(headers.get("parent_id") or ""),
    )


def _redis_peek(conn, name: str, limit: int) -> list[WaitingMessage]:
    channel = conn.default_channel
    layout = _redis_layout(channel)
    client = _redis_client(channel)
    messages: list[WaitingMessage] = []
    for step, key in layout.keys(name):
        remaining = limit - len(messages)
        if remaining <= 0:
            break
        # Producers LPUSH, workers BRPOP: the tail is next, so read from the end backwards.
        for raw in reversed(client.lrange(key, -remaining, -1)):
            messages.append(_waiting_message(len(messages) + 1, raw, step))
    return messages


# --- AMQP ---------------------------------------------------------------------------------------

# RabbitMQ tells how many messages are taken but not yet acknowledged only through its
# management API; a passive declare counts the ready ones.
RABBITMQ_API_NOT_SET = ("In flight unknown: RabbitMQ tells unacknowledged messages only through its "
                        "management API, and TASKOPS_RABBITMQ_API is not set.")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer (3xx), never followed: the credentials go to the configured host only."""

    def redirect_request(self, *args, **kwargs) -> None:
        return None


_API_OPENER = urllib.request.build_opener(_NoRedirect)


class _ApiUnanswered(Exception):
    """The management API gave no usable answer; the message never holds its credentials."""


def _rabbitmq_api_request(url: str) -> tuple[str, dict[str, str]]:
    """The management API's address without credentials, and the Authorization header they make."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _ApiUnanswered("TASKOPS_RABBITMQ_API is not an http:// or https:// address with a host")
    headers = {"Accept": "application/json"}
    if parts.username is not None:
        token = base64.b64encode(
            f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            .encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    netloc = parts.hostname or ""
    if ":" in netloc:
        netloc = f"[{netloc}]"
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", "")), headers


def _rabbitmq_api_unacked(vhost: str, *, timeout: float) -> dict[str, int]:
    """Every queue of `vhost` with its unacknowledged messages, from RabbitMQ's management API
    (its statistics, a few seconds old). One GET, each socket operation bounded by `timeout`.

    Raises _ApiUnanswered, whose message never holds the credentials.
    """
    where = "the address in TASKOPS_RABBITMQ_API"
    try:
        base, headers = _rabbitmq_api_request(config.rabbitmq_api)
        where = base.split("://", 1)[-1]
        if timeout <= 0:
            raise _ApiUnanswered(f"no time was left to ask RabbitMQ's management API at {where}")
        request = urllib.request.Request(
            f"{base}/api/queues/{quote(vhost, safe='')}?columns=name,messages_unacknowledged",
            headers=headers)
        with _API_OPENER.open(request, timeout=timeout) as response:
            rows = json.loads(response.read(8 * 1024 * 1024))
    except urllib.error.HTTPError as exc:
        refused = " (check the user and its monitoring tag)" if exc.code in (401, 403) else ""
        raise _ApiUnanswered(f"RabbitMQ's management API at {where} answered {exc.code}{refused}") from None
    except (urllib.error.URLError, OSError) as exc:  # socket errors: they name no address
        reason = getattr(exc, "reason", None) or exc
        raise _ApiUnanswered(f"RabbitMQ's management API at {where} did not answer: {reason}") from None
    except ValueError:  # a port that is no number, an answer that is no JSON
        raise _ApiUnanswered(f"RabbitMQ's management API at {where} gave no readable answer") from None
    if not isinstance(rows, list):
        raise _ApiUnanswered(f"RabbitMQ's management API at {where} answered something else than queues")
    return {str(row["name"]): _count(row.get("messages_unacknowledged"))
            for row in rows if isinstance(row, dict) and row.get("name")}


def _amqp_declared(conn, name: str) -> QueueDepth:
    """A passive declare: ready messages and consumers, or a queue the broker does not have."""
    channel = conn.channel()
    try:
        _queue, count, consumers = channel.queue_declare(queue=name, passive=True)
        return QueueDepth(name=name, depth=count, consumers=consumers)
    except NotFound:  # the broker closes the channel: the next queue gets a new one
        return QueueDepth(name=name, depth=0, exists=False)
    finally:
        try:
            channel.close()
        except BROKER_ERRORS:
            pass


def _amqp_depths(conn, names: list[str], *, discover: bool, deadline: float) -> BrokerReading:
    """Passive declares for the depths; the management API (when set) for unacknowledged
    messages and, with `discover`, for every queue of the virtual host."""
    api: dict[str, int] | None = None
    note = RABBITMQ_API_NOT_SET
    if config.rabbitmq_api:
        try:
            api = _rabbitmq_api_unacked(conn.virtual_host or "/", timeout=deadline - time.monotonic())
            note = ""
        except _ApiUnanswered as exc:
            note = f"In flight unknown: {exc}."
    seen = sorted(n for n in api or () if not celery_own_queue(n)) if discover else []
    queues = {}
    for name in sorted(set(names) | set(seen)):
        declared = _amqp_declared(conn, name)
        unacked = (api or {}).get(name)  # None too for a queue newer than the API's statistics
        if unacked is not None and declared.exists:
            declared = QueueDepth(name=name, depth=declared.depth, consumers=declared.consumers,
                                  in_flight=unacked)
        queues[name] = declared
    in_flight_total = (sum(n for name, n in api.items() if not celery_own_queue(name))
                       if api is not None else None)
    return BrokerReading(transport="amqp", queues=queues, in_flight_total=in_flight_total,
                         seen_queues=tuple(seen), in_flight_note=note)


# --- Public ------------------------------------------------------------------------------------


def queue_depths(
    names: Iterable[str], *, discover: bool = True, timeout: float | None = None
) -> BrokerReading:
    """Depths of `names` (plus, with `discover`, every queue the broker holds or binds).

    Redis: one pipeline of LLEN over every priority list of every queue, plus the unacked hash
    with its index (each in-flight message and when it was taken, up to UNACKED_DETAIL_LIMIT).
    AMQP: a passive declare per queue (ready messages, consumers); unacknowledged messages and
    the virtual host's other queues from RabbitMQ's management API when TASKOPS_RABBITMQ_API
    is set, asked within what is left of `timeout` (else `in_flight_note` says why they are
    unknown). Raises BrokerUnavailable.
    """
    started = time.monotonic()
    bound = config.broker_timeout if timeout is None else timeout
    names = sorted(set(names))
    with broker_connection(timeout=timeout) as conn:
        if _transport_name(conn) == "redis":
            reading = _redis_depths(conn, names, discover=discover)
        else:
            reading = _amqp_depths(conn, names, discover=discover, deadline=started + bound)
    return dataclasses.replace(reading, latency_ms=round((time.monotonic() - started) * 1000, 1))


def queue_peek(name: str, *, limit: int = 20, timeout: float | None = None) -> list[WaitingMessage]:
    """The next `limit` messages of a queue, in the order workers will take them, not consumed.

    Only the Redis transport can be read without consuming; other brokers return [].
    """
    with broker_connection(timeout=timeout) as conn:
        if _transport_name(conn) != "redis":
            return []
        return _redis_peek(conn, name, limit)


def _redis_own_key(channel, name: str) -> bool:
    """True when `name` is (or would purge) one of kombu's own Redis keys rather than a queue's lists."""
    own = {channel.unacked_key, channel.unacked_index_key, channel.unacked_mutex_key}
    return name in own or channel.sep in name or celery_own_queue(name)


def queue_purge(name: str, *, timeout: float | None = None) -> int:
    """Delete every waiting message of `name` (all priority levels) through kombu; return how many.

    Raises QueueNotPurgeable for a name that is no task queue of this broker, BrokerUnavailable.
    """
    with broker_connection(timeout=timeout) as conn:
        channel = conn.default_channel
        if _transport_name(conn) == "redis" and _redis_own_key(channel, name):
            raise QueueNotPurgeable(f"{name!r} is one of the broker's own keys, not a task queue")
        try:
            return int(channel.queue_purge(name) or 0)
        except NotFound as exc:
            raise QueueNotPurgeable(f"there is no queue {name!r} in the broker") from exc


def unacked_restore(tags: list[str], *, timeout: float | None = None) -> int:
    """Put the unacknowledged messages `tags` back at the front of their queues, now, through
    kombu's own restore (the Redis QoS's restore_by_tag, which the broker's visibility timeout
    uses too); return how many were still unacknowledged.

    Redis only (other brokers give a message back when its consumer's connection closes): 0.
    Raises BrokerUnavailable.
    """
    restored = 0
    with broker_connection(timeout=timeout) as conn:
        if _transport_name(conn) != "redis" or not tags:
            return 0
        channel = conn.default_channel
        client = channel.client  # kombu's own client: it adds the global key prefix
        for tag in tags:
            if client.hexists(channel.unacked_key, tag):
                channel.qos.restore_by_tag(tag, client=client)
                restored += 1
    return restored
