"""The in-memory fakes (tests/support/fakes.py) answer as the real adapters do: one scenario, run on both.

Each scenario drives an adapter trio (control, broker, publish) and returns what it observed,
normalised only where a real cluster differs by nature (process ids, uptimes, latencies). It
runs once against a real Redis and real workers and once against a FakeCluster set up the
same way; the two observations must be equal: types, values and errors (BrokerUnavailable,
QueueNotPurgeable). A fake that drifts from its adapter fails here, not in a page test.
"""

from __future__ import annotations

import dataclasses
import inspect
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from types import SimpleNamespace

import pytest

from taskops import broker, control, publish
from taskops.capture import CapturedCall
from taskops.publish import Send
from tests.support.fakes import ADAPTERS, FakeCluster, adapter_functions
from tests.support.poll import poll_until
from tests.support.tasks import send, unique

pytestmark = pytest.mark.django_db(transaction=True)

GHOST = "ghost@nowhere"
REPORT = "demo.tasks.generate_report"
SLOW = "demo.tasks.slow_task"


@dataclass
class Side:
    """One adapter trio and how to act on the cluster behind it."""

    control: object
    broker: object
    publish: object
    run_slow: Callable[[str, str], str]  # (worker, queue) -> id of a task now running there
    stop_broker: Callable[[], None]
    # queue -> id of its next message, taken by a consumer that then died without acknowledging it
    take_and_die: Callable[[str], str] | None = None


def observed(value):
    """`value` with its type, field by field; only what differs between two clusters by nature is cut."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: observed(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, control.WorkerStats):
            fields.update(pid=type(value.pid).__name__, uptime_seconds=type(value.uptime_seconds).__name__,
                          pool_processes=("processes", len(value.pool_processes)))
        if isinstance(value, control.TaskInfo):
            fields.update(started_at=type(value.started_at).__name__, pid=type(value.pid).__name__)
        if isinstance(value, (broker.BrokerReading, broker.BrokerStatus)):
            fields["latency_ms"] = type(value.latency_ms).__name__
        if isinstance(value, broker.BrokerStatus) and value.error:
            fields["error"] = "(a reason)"
        if isinstance(value, broker.WaitingMessage):
            fields.update(eta=bool(value.eta), expires=bool(value.expires))
        if isinstance(value, broker.InFlightMessage):
            fields.update(tag=bool(value.tag), taken_at=type(value.taken_at).__name__)
        return (type(value).__name__, fields)
    if isinstance(value, dict):
        return {key: observed(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, [observed(item) for item in value])
    return value


def raised(call: Callable[[], object]):
    """What a call returned (observed), or the type of what it raised."""
    try:
        return observed(call())
    except Exception as exc:  # noqa: BLE001 - the type is the observation
        return ("raised", type(exc).__name__)


def assert_same(real: dict, faked: dict) -> None:
    """Every step observed the same on both sides (all differences listed at once)."""
    differences = {step: {"real": value, "fake": faked.get(step)} for step, value in real.items()
                   if faked.get(step) != value}
    assert differences == {}, "\n".join(f"{k}:\n  real {v['real']!r}\n  fake {v['fake']!r}" for k, v in differences.items())
    assert faked.keys() == real.keys()


# --- control -------------------------------------------------------------------------------------


def control_scenario(side: Side, worker: str, scaled: str, queue: str) -> dict:
    c = side.control
    seen: dict[str, object] = {}

    def consumers() -> tuple[str, ...]:
        return c.queue_consumers(timeout=0.5).get(worker, ())

    def processes() -> int:
        return len(c.worker_stats(destination=[worker])[worker].pool_processes)

    seen["ping"] = observed(c.worker_ping(destination=[worker]))
    seen["ping a ghost"] = observed(c.worker_ping(destination=[GHOST], timeout=0.3))
    seen["discover"] = observed(c.worker_discover(timeout=0.5))
    seen["consumers"] = observed(c.queue_consumers(timeout=0.5))
    seen["stats"] = observed(c.worker_stats(destination=[worker, scaled]))
    seen["registered"] = observed(c.worker_registered([worker]))
    seen["registered of nobody"] = observed(c.worker_registered([]))
    seen["snapshots"] = observed(c.worker_snapshots([worker, GHOST], detail=True))
    seen["snapshots, short"] = observed(c.worker_snapshots([worker]))
    seen["snapshots of nobody"] = observed(c.worker_snapshots([]))

    seen["rate limit"] = observed(c.rate_limit(REPORT, "10/m", destination=[worker]))
    seen["rate limit kept"] = c.worker_registered([worker])[worker][REPORT]
    seen["rate limit, unknown task"] = observed(c.rate_limit("no.such.task", "1/s", destination=[worker]))
    seen["rate limit removed"] = observed(c.rate_limit(REPORT, "", destination=[worker]))
    seen["rate limit gone"] = c.worker_registered([worker])[worker][REPORT]

    seen["cancel"] = observed(c.consumer_cancel(queue, destination=[worker]))
    seen["consumers after cancel"] = poll_until(lambda: ("after", consumers()) if queue not in consumers()
                                                else None, timeout=10, message="the cancel is applied")
    seen["add"] = observed(c.consumer_add(queue, destination=[worker]))
    seen["consumers after add"] = poll_until(lambda: ("after", consumers()) if queue in consumers()
                                             else None, timeout=10, message="the add is applied")
    seen["cancel on a ghost"] = observed(c.consumer_cancel(queue, destination=[GHOST]))

    seen["grow"] = observed(c.pool_grow(1, destination=[worker]))
    seen["grown"] = poll_until(lambda: (n := processes()) != 2 and n, timeout=20, message="grown")
    seen["shrink"] = observed(c.pool_shrink(1, destination=[worker]))
    seen["shrunk"] = poll_until(lambda: (n := processes()) != 3 and n, timeout=20, message="shrunk")
    seen["autoscale, not autoscaling"] = observed(c.autoscale(3, 1, destination=[worker]))
    seen["autoscale"] = observed(c.autoscale(4, 2, destination=[scaled]))
    seen["autoscaler after"] = {k: v for k, v in
                                c.worker_stats(destination=[scaled])[scaled].autoscaler.items()
                                if k in ("max", "min")}
    seen["grow while autoscaling"] = observed(c.pool_grow(1, destination=[scaled]))

    seen["revoke"] = observed(c.revoke(["revoked-id"], expected=[worker, scaled]))
    seen["revoke, a ghost expected"] = observed(c.revoke(["revoked-id"], expected=[worker, GHOST]))
    seen["terminate, nothing running"] = observed(
        c.revoke(["revoked-id"], terminate=True, signal="SIGTERM", expected=[worker, scaled]))
    running = side.run_slow(worker, queue)
    seen["running"] = [{**fields, "id": fields["id"] == running} for _kind, fields in
                       observed(c.worker_snapshots([worker])[worker].active)[1]]
    terminated = c.revoke([running], terminate=True, signal="SIGTERM", expected=[worker, scaled])
    seen["terminate"] = observed(dataclasses.replace(terminated, replies={
        name: reply.replace(running, "(the running id)") for name, reply in terminated.replies.items()}))
    seen["after terminate"] = poll_until(
        lambda: ("active", c.worker_snapshots([worker])[worker].active) if not
        c.worker_snapshots([worker])[worker].active else None, timeout=15, message="terminated")

    seen["shutdown"] = observed(c.shutdown(destination=[scaled]))
    seen["after shutdown"] = poll_until(
        lambda: ("pings", c.worker_ping(destination=[scaled], timeout=0.3)) if not
        c.worker_ping(destination=[scaled], timeout=0.3) else None, timeout=20, message="gone")
    seen["discover after shutdown"] = observed(c.worker_discover(timeout=0.5))

    side.stop_broker()
    for name, call in {
        "ping": lambda: c.worker_ping(destination=[worker]),
        "discover": lambda: c.worker_discover(timeout=0.5),
        "stats": lambda: c.worker_stats(destination=[worker]),
        "snapshots": lambda: c.worker_snapshots([worker]),
        "consumers": lambda: c.queue_consumers(timeout=0.5),
        "cancel": lambda: c.consumer_cancel(queue, destination=[worker]),
        "revoke": lambda: c.revoke(["x"]),
        "rate limit": lambda: c.rate_limit(REPORT, "1/s", destination=[worker]),
    }.items():
        seen[f"broker down: {name}"] = raised(call)
    return seen


def test_the_fake_control_answers_as_a_real_worker_does(start_worker, isolated_broker, monkeypatch):
    queue = unique("contract")
    real_worker = start_worker(queue, concurrency=2)
    real_scaled = start_worker(unique("scaled"), extra_args=("--autoscale=3,1",))

    def run_slow_real(worker: str, queue: str) -> str:
        sent = send(SLOW, args=[120], queue=queue)
        poll_until(lambda: control.worker_snapshots([worker])[worker].active, timeout=30,
                   message="the slow task runs")
        return sent.id

    real = control_scenario(Side(control, broker, publish, run_slow_real, isolated_broker.stop),
                            real_worker.name, real_scaled.name, queue)

    fake = FakeCluster()
    fake.worker_add(real_worker.name, queue, concurrency=2)
    fake.worker_add(real_scaled.name, real_scaled.queues[0], concurrency=3, autoscale=(3, 1))
    slow_id = str(uuid.uuid4())

    def run_slow_fake(worker: str, queue: str) -> str:
        fake.task_running(worker, slow_id, SLOW, [120], {}, queue)
        return slow_id

    faked = control_scenario(Side(fake.control, fake.broker, fake.publish, run_slow_fake,
                                  lambda: setattr(fake, "broker_up", False)),
                             real_worker.name, real_scaled.name, queue)

    assert_same(real, faked)


# --- broker and publish ---------------------------------------------------------------------------


def _call(**changes) -> CapturedCall:
    values = {"task": REPORT, "args": ["sales"], "kwargs": {"rows": 2}, "routing_key": "q"}
    return CapturedCall(**{**values, **changes})


def broker_scenario(side: Side, queue: str) -> dict:
    b, p = side.broker, side.publish
    account, since = uuid.UUID(int=7), datetime(2026, 3, 29, 1, 30, tzinfo=timezone.utc)
    seen: dict[str, object] = {}
    seen["status"] = observed(b.broker_status())
    seen["depth of nothing"] = observed(b.queue_depths([queue], discover=False))
    p.calls_publish([
        Send("id-low", _call(routing_key=queue, priority=6)),
        Send("id-high", _call(routing_key=queue, priority=0, args=[account, since],
                              kwargs={"since": since})),
        Send("id-retry", _call(routing_key=queue, priority=9), "id-original",
             "('sales', '<masked>')", "{}"),
        Send("id-default", _call(routing_key="", priority=None)),
    ], sent_events=False)
    p.calls_publish([Send("id-later", _call(routing_key=queue, priority=3))], countdown=60,
                    expires=3600)
    p.calls_publish([])
    p.console_task_send("taskops.retry_job_run", [42], queue=f"{queue}-jobs")

    seen["depths"] = observed(b.queue_depths([queue, f"{queue}-jobs", "reports"], discover=False))
    seen["discovered"] = sorted(b.queue_depths([], discover=True).seen_queues)
    seen["peek"] = observed(b.queue_peek(queue))
    seen["peek two"] = observed(b.queue_peek(queue, limit=2))
    seen["peek default route"] = observed(b.queue_peek("reports"))
    seen["peek console task"] = [(m.task, m.args) for m in b.queue_peek(f"{queue}-jobs")]
    seen["peek nothing"] = observed(b.queue_peek(unique("empty")))

    taken = side.take_and_die(queue)
    reading = b.queue_depths([queue], discover=False)
    seen["taken, not acknowledged"] = observed(reading)
    tag = next(m.tag for m in reading.in_flight_messages if m.id == taken)
    seen["restore"] = b.unacked_restore([tag, "no-such-tag"])
    seen["restore again"] = b.unacked_restore([tag])
    seen["restore nothing"] = b.unacked_restore([])
    seen["after restore"] = observed(b.queue_depths([queue], discover=False))
    seen["restored first in line"] = [m.id for m in b.queue_peek(queue)]
    seen["purge"] = b.queue_purge(queue)
    seen["depth after purge"] = observed(b.queue_depths([queue], discover=False))
    seen["purge an unknown queue"] = b.queue_purge(unique("never"))
    for key in ("unacked", "unacked_index", "_kombu.binding.reports", f"{queue}\x06\x163",
                "x.pidbox", "celeryev.abc"):
        seen[f"purge {key!r}"] = raised(lambda: b.queue_purge(key))

    side.stop_broker()
    seen["broker down: status"] = observed(b.broker_status())
    for name, call in {
        "depths": lambda: b.queue_depths([queue]),
        "peek": lambda: b.queue_peek(queue),
        "purge": lambda: b.queue_purge(queue),
        "restore": lambda: b.unacked_restore(["a-tag"]),
        "publish": lambda: p.calls_publish([Send("id-lost", _call(routing_key=queue))]),
        "console task": lambda: p.console_task_send("taskops.retry_job_run", [1], queue=queue),
    }.items():
        seen[f"broker down: {name}"] = raised(call)
    return seen


def take_and_die_real(queue: str) -> str:
    """A consumer takes the next message of `queue` and dies: kombu keeps it unacknowledged."""
    from taskops.conf import celery_app

    with celery_app().connection_for_write() as conn:
        channel = conn.default_channel
        channel.do_restore = False  # dying, it gives nothing back when its channel closes
        return channel.basic_get(queue, no_ack=False).headers["id"]


def test_the_fake_broker_and_publisher_answer_as_a_real_redis_does(isolated_broker):
    queue = unique("contract")
    real = broker_scenario(Side(control, broker, publish, None, isolated_broker.stop,
                                take_and_die_real), queue)

    fake = FakeCluster()
    faked = broker_scenario(Side(fake.control, fake.broker, fake.publish, None,
                                 lambda: setattr(fake, "broker_up", False),
                                 lambda queue: fake.message_take(queue).id), queue)

    assert_same(real, faked)


def test_each_fake_offers_every_public_function_of_its_adapter_with_the_same_signature():
    fake = FakeCluster()
    for label, module in ADAPTERS.items():
        fakes = vars(getattr(fake, label))
        real = adapter_functions(module)
        assert set(fakes) == set(real), label
        for name, function in real.items():
            assert inspect.signature(fakes[name]) == inspect.signature(function), (label, name)


def test_installing_the_fakes_reaches_modules_that_imported_a_function_by_name(monkeypatch):
    from taskops.services import catalog, retries

    fake = FakeCluster().install(monkeypatch)

    assert control.worker_ping is fake.control.worker_ping
    assert broker.queue_depths is fake.broker.queue_depths
    assert retries.calls_publish is catalog.calls_publish is fake.publish.calls_publish
    assert isinstance(fake.control, SimpleNamespace)
