"""The console's only sender: Celery's own message building and send path, batched (Celery's private API lives here only)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from celery.utils.nodenames import anon_nodename
from celery.utils.saferepr import saferepr
from kombu.common import maybe_declare
from kombu.exceptions import BatchPublishError

from taskops.capture import RETRY_OF_HEADER, CapturedCall
from taskops.conf import celery_app
from taskops.connection import BrokerUnavailable, broker_connection
from taskops.masking import arguments_shown

# Messages per Redis pipeline in a publish batch.
PUBLISH_BATCH = 1000

class DeliveryUncertain(BrokerUnavailable):
    """The broker failed once publishing had begun: some of the messages may have been delivered."""


class Send(NamedTuple):
    """One call to send: its new task id, the call, and for a retry the run it retries.

    A retry also carries the original's argument reprs as the results table kept them (the
    sender may have masked them with `argsrepr`); None computes them as Celery does, of the
    values as the console shows them (masked by key; whole in a part the original's sender
    masked), so what the console sends never shows more than the console does.
    """

    task_id: str
    call: CapturedCall
    original_id: str | None = None
    argsrepr: str | None = None
    kwargsrepr: str | None = None



def _reprs(send: Send, amqp, maxlevels: int) -> dict[str, str]:
    """The argsrepr and kwargsrepr the message carries (see Send)."""
    call = send.call
    args, kwargs = arguments_shown(call.args, call.kwargs, call.sender_masked or ())
    args, kwargs = args or (), kwargs or {}  # as Celery's as_task_v2: no arguments reads "()"
    return {
        "argsrepr": send.argsrepr if send.argsrepr is not None else saferepr(
            args, amqp.argsrepr_maxsize, maxlevels=maxlevels),
        "kwargsrepr": send.kwargsrepr if send.kwargsrepr is not None else saferepr(
            kwargs, amqp.kwargsrepr_maxsize, maxlevels=maxlevels),
    }


def _headers(send: Send) -> dict:
    """The call's own headers, and for a retry the header that links it to the original."""
    return {**send.call.headers, **({RETRY_OF_HEADER: send.original_id} if send.original_id else {})}


class _Sender:
    """Celery's own send path for many calls, with what `app.send_task` looks up per call read once.

    Per message it does what send_task does: the task's execution options as defaults, the
    app's router, `amqp.as_task_v2`, `backend.on_task_call` and `amqp.send_task_message` on the
    given producer. What it does not repeat per message: reading the configuration (each read
    costs ~20 µs on a Django-backed Celery config, and send_task makes several), declaring the
    queue (declared once per queue per batch), and computing argument reprs a retry already has.
    """

    def __init__(self, app, producer, *, sent_events: bool | None) -> None:
        conf = app.conf
        self.app, self.amqp, self.producer = app, app.amqp, producer
        self.router = self.amqp.router
        self.send_message = self.amqp.send_task_message  # builds a sender: take it once
        self.backend = app.backend
        self.sent_event = conf.task_send_sent_event if sent_events is None else sent_events
        self.inherit_priority = conf.task_inherit_parent_priority
        self.maxlevels = conf.task_repr_maxlevels
        self.origin = anon_nodename()
        self.reply_to = app.thread_oid
        self.parent = app.current_worker_task
        self.declared: set[str] = set()
        self.exec_options: dict[str, tuple[object, dict]] = {}

    def _task_defaults(self, name: str) -> tuple[object, dict]:
        if name not in self.exec_options:
            task = self.app._tasks.get(name)
            found = getattr(task, "_get_exec_options", dict)() if task is not None else {}
            self.exec_options[name] = (task, {k: v for k, v in (found or {}).items()
                                              if v is not None})
        return self.exec_options[name]

    def fits(self, call: CapturedCall) -> bool:
        """False when the task's defaults ask for what only send_task handles (expiry, delays)."""
        return "expires" not in self._task_defaults(call.task)[1]

    def publish(self, send: Send) -> None:
        call = send.call
        task_type, defaults = self._task_defaults(call.task)
        options = dict(defaults)
        options.update(
            queue=call.routing_key or None,
            # A captured exchange comes with its routing key; a queue alone routes by that
            # queue's own declaration (Celery then publishes to the queue directly).
            exchange=call.exchange or None,
            routing_key=(call.routing_key or None) if call.exchange else None,
            priority=call.priority,
            headers=_headers(send),
        )
        options.pop("time_limit", None), options.pop("soft_time_limit", None)
        ignore_result = options.pop("ignore_result", None)
        options = self.router.route(options, call.task, call.args, call.kwargs, task_type)
        root_id = parent_id = None
        if self.parent is not None:
            root_id = self.parent.request.root_id or self.parent.request.id
            parent_id = self.parent.request.id
            if self.inherit_priority:
                options.setdefault("priority", self.parent.request.delivery_info.get("priority"))
        message = self.amqp.as_task_v2(
            send.task_id, call.task, call.args, call.kwargs,
            time_limit=call.time_limit, soft_time_limit=call.soft_time_limit,
            create_sent_event=self.sent_event, root_id=root_id, parent_id=parent_id,
            reply_to=self.reply_to, origin=self.origin, ignore_result=ignore_result,
            **_reprs(send, self.amqp, self.maxlevels), **options,
        )
        queue = options.get("queue")
        if queue is not None and queue.name not in self.declared:
            maybe_declare(queue, self.producer.channel)
            self.declared.add(queue.name)
        if not ignore_result:
            self.backend.on_task_call(self.producer, send.task_id)
        self.send_message(self.producer, call.task, message, retry=False, declare=[], **options)


def calls_publish(sends: Iterable[Send | tuple], *, sent_events: bool | None = None,
                  **options) -> None:
    """Send calls, each routed as it says, on one short-timeout connection in a kombu publish batch.

    The one send path of the console: retries (an original id set: a retry-of header links them)
    and new runs from the catalog (original None; `options` such as countdown, eta, expires go
    through `app.send_task` itself; a queue, exchange or routing_key there replaces the call's,
    as a schedule run now needs). `sent_events` None sends task-sent events as the app is
    configured; bulk jobs pass False. Raises BrokerUnavailable, also when a batch flush failed
    (delivery of that batch is then uncertain); DeliveryUncertain (a BrokerUnavailable) once
    publishing had begun, when some messages may have gone out.
    """
    sends = [s if isinstance(s, Send) else Send(*s) for s in sends]
    if not sends:
        return
    app = celery_app()
    publishing = False
    try:
        with broker_connection() as conn:
            producer = app.amqp.Producer(conn, auto_declare=False)
            sender = _Sender(app, producer, sent_events=sent_events)
            try:
                with producer.batch(max_size=PUBLISH_BATCH):
                    for send in sends:
                        publishing = True
                        if not options and sender.fits(send.call):
                            sender.publish(send)
                        else:
                            _send_task(app, producer, send, options)
            except BatchPublishError as exc:
                raise DeliveryUncertain(f"publishing failed, delivery uncertain: {exc}") from exc
    except BrokerUnavailable as exc:
        if publishing and not isinstance(exc, DeliveryUncertain):
            raise DeliveryUncertain(f"{exc} (once publishing had begun: delivery uncertain)") from exc
        raise


def _send_task(app, producer, send: Send, options: dict) -> None:
    call = send.call
    routed = {
        "queue": call.routing_key or None, "exchange": call.exchange or None,
        "routing_key": (call.routing_key or None) if call.exchange else None,
    }
    app.send_task(
        call.task, args=call.args, kwargs=call.kwargs, task_id=send.task_id,
        priority=call.priority, time_limit=call.time_limit, soft_time_limit=call.soft_time_limit,
        headers=_headers(send), producer=producer, add_to_parent=False,
        **_reprs(send, app.amqp, app.conf.task_repr_maxlevels),
        # A queue, exchange or routing key in `options` (a schedule run as beat runs it) wins.
        **{**routed, **options},
    )


def console_task_send(name: str, args: list, *, queue: str) -> None:
    """Queue one of the console's own tasks (such as the bulk retry runner) on `queue`."""
    app = celery_app()
    with broker_connection() as conn:
        app.send_task(name, args=args, queue=queue, connection=conn, add_to_parent=False)
