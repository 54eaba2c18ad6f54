"""Reads of the task catalog: every registered task (local registry and live workers) and one in full."""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from datetime import datetime

from celery import Task
from django.utils import timezone
from kombu.utils.json import dumps as kombu_dumps
from kombu.utils.json import loads as kombu_loads

from django.contrib.auth.models import AnonymousUser, User

from taskops import cache, control, liveness
from taskops.broker import priority_range
from taskops.conf import celery_app, config
from taskops.connection import BrokerUnavailable
from taskops.permissions import task_name_refusal
from taskops.selectors.live import cluster_reading, queue_refusal

REGISTERED_CACHE_KEY = "taskops:registered"
# Task attributes worth knowing before sending one (shown on its page when it is local).
TASK_OPTIONS = ("rate_limit", "time_limit", "soft_time_limit", "max_retries", "default_retry_delay",
                "acks_late", "priority", "expires", "ignore_result")


@dataclass(frozen=True)
class Routing:
    """Where a task goes when sent without options: the router's queue, exchange and routing key."""

    queue: str
    exchange: str
    routing_key: str


@dataclass(frozen=True)
class CatalogEntry:
    """One task name: what it does, where it goes and who knows it."""

    name: str
    summary: str
    routing: Routing
    local: bool
    workers: tuple[str, ...]
    rate_limits: tuple[tuple[str, str], ...] = ()  # (worker, rate) where a worker reports one


@dataclass(frozen=True)
class WorkerRegistrations:
    """The tasks each live worker registers ({worker: {task: attrs}}), and what could not be read."""

    by_worker: dict[str, dict[str, dict[str, str]]] = field(default_factory=dict)
    broker_ok: bool = True
    banners: tuple[str, ...] = ()
    complete: bool = False  # every live worker answered: a task none lists is registered nowhere live


@dataclass(frozen=True)
class KnownTaskNames:
    """The task names the console knows: its own registry's and each live worker's.

    The one answer to "is this a task?" for the catalog, the run form and retry with edits.
    """

    local: frozenset[str]
    on_workers: frozenset[str]
    complete: bool  # every live worker answered: a name none lists is registered nowhere live
    broker_ok: bool = True

    @property
    def names(self) -> frozenset[str]:
        return self.local | self.on_workers

    def refusal(self, name: str) -> str:
        """Why the console cannot vouch for `name` ("" when it can).

        A name a live worker registers is confirmed. While every worker answered, a name
        registered only here is known too; while one did not (or the broker did not), only
        what a live worker confirms is.
        """
        if name in self.on_workers or (self.complete and name in self.local):
            return ""
        if self.complete:
            return f"No task {name!r} is registered here or on any live worker."
        why = "the broker did not answer" if not self.broker_ok else "not every worker answered"
        return (f"The console cannot confirm that a live worker registers {name} ({why}); while "
                "its list of tasks is incomplete it sends only tasks a live worker confirmed.")


@dataclass(frozen=True)
class TaskCatalog:
    taken_at: datetime
    entries: tuple[CatalogEntry, ...]
    workers: tuple[str, ...]
    broker_ok: bool
    banners: tuple[str, ...]
    complete: bool

    def entry(self, name: str) -> CatalogEntry | None:
        return next((e for e in self.entries if e.name == name), None)


@dataclass(frozen=True)
class TaskParameter:
    """One parameter of a task's signature, as the run form offers it."""

    name: str
    kind: str  # inspect.Parameter kind name: POSITIONAL_ONLY, KEYWORD_ONLY, VAR_POSITIONAL ...
    required: bool
    default_json: str  # the default as typed JSON; "" when there is none or it is not JSON
    default_text: str  # the default as Python shows it; "" when there is none
    annotation: str


@dataclass(frozen=True)
class TaskDetail:
    name: str
    entry: CatalogEntry | None
    docstring: str
    signature: str
    parameters: tuple[TaskParameter, ...] | None  # None: not importable here (JSON args/kwargs)
    routing: Routing
    options: tuple[tuple[str, str], ...]
    broker_ok: bool
    banners: tuple[str, ...]

    @property
    def local(self) -> bool:
        return self.parameters is not None


def _local_tasks() -> dict[str, Task]:
    """The console's own registry (the project's task modules are imported), builtins left out."""
    return {name: task for name, task in celery_app().tasks.items() if not name.startswith("celery.")}


def task_local(name: str) -> Task | None:
    """The task object registered here under `name`, or None (unknown here, or a Celery builtin)."""
    return None if name.startswith("celery.") else celery_app().tasks.get(name)


def task_routing(name: str) -> Routing:
    """The router's decision for `name` sent without options (the default queue if no route fits)."""
    app = celery_app()
    try:
        route = app.amqp.router.route({}, name)
    except KeyError:  # a route names a queue that is not declared (QueueNotFound)
        queue = app.conf.task_default_queue
        return Routing(queue=queue, exchange=queue, routing_key=queue)
    queue = route["queue"]
    exchange = route.get("exchange") or queue.exchange
    return Routing(
        queue=queue.name,
        exchange=getattr(exchange, "name", None) or str(exchange or ""),
        routing_key=route.get("routing_key") or queue.routing_key or queue.name,
    )


def task_signature(name: str) -> inspect.Signature | None:
    """The signature callers must fit (`self` of bound tasks left out); None when unknown here."""
    task = celery_app().tasks.get(name)
    if task is None:
        return None
    try:
        signature = inspect.signature(task.run, eval_str=True)
    except Exception:  # an annotation that does not evaluate here: keep annotations as text
        try:
            signature = inspect.signature(task.run)
        except (TypeError, ValueError):
            return None  # a builtin or C function: nothing to check against
    parameters = list(signature.parameters.values())
    if parameters and parameters[0].name == "self":
        signature = signature.replace(parameters=parameters[1:])
    return signature


def _json_default(value) -> str:
    """`value` as typed JSON when it comes back as itself, else ""."""
    try:
        text = kombu_dumps(value)
        return text if kombu_loads(text) == value else ""
    except (TypeError, ValueError, OverflowError):
        return ""


def _annotation_text(annotation) -> str:
    if annotation is inspect.Parameter.empty:
        return ""
    return annotation if isinstance(annotation, str) else inspect.formatannotation(annotation)


def _parameter(p: inspect.Parameter) -> TaskParameter:
    has_default = p.default is not inspect.Parameter.empty
    variadic = p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    return TaskParameter(
        name=p.name,
        kind=p.kind.name,
        required=not has_default and not variadic,
        default_json=_json_default(p.default) if has_default else "",
        default_text=repr(p.default) if has_default else "",
        annotation=_annotation_text(p.annotation),
    )


def _read_registrations() -> WorkerRegistrations:
    reading = cluster_reading()
    banners = list(reading.banners)
    if not reading.broker_ok:
        return WorkerRegistrations(broker_ok=False, banners=(
            *banners, "Only the tasks known to this console are listed."))
    online = [w.name for w in reading.workers if w.status == "online"]
    try:
        by_worker = control.worker_registered(online)  # one broadcast, answered workers only
    except BrokerUnavailable as exc:
        return WorkerRegistrations(broker_ok=False, banners=(
            *banners, f"The broker is not answering ({exc}). Only the tasks known to this console "
                      "are listed."))
    silent = sorted(set(online) - set(by_worker))
    if silent:
        banners.append(f"Not answering: {', '.join(silent)}; the tasks only they register are not "
                       "listed.")
    if not online:
        banners.append("No worker is online: only the tasks known to this console are listed.")
    # A worker that does not answer yet (starting) or any more (not answering) may register more.
    complete = not silent and not any(w.status in (liveness.STARTING, liveness.NOT_ANSWERING)
                                      for w in reading.workers)
    return WorkerRegistrations(by_worker=by_worker, banners=tuple(banners), complete=complete)


def worker_registrations() -> WorkerRegistrations:
    """What every live worker registers, shared by all viewers for TASKOPS_LIVE_TTL seconds."""
    ttl = config.live_ttl
    return cache.shared_value(REGISTERED_CACHE_KEY, ttl, _read_registrations)


def _summary(task: Task | None) -> str:
    doc = inspect.cleandoc(task.__doc__ or "") if task is not None else ""
    return doc.splitlines()[0] if doc else ""


def _entry(name: str, task: Task | None, registrations: WorkerRegistrations) -> CatalogEntry:
    workers = tuple(sorted(w for w, tasks in registrations.by_worker.items() if name in tasks))
    rates = tuple(
        (w, registrations.by_worker[w][name]["rate_limit"])
        for w in workers if registrations.by_worker[w][name].get("rate_limit")
    )
    return CatalogEntry(name=name, summary=_summary(task), routing=task_routing(name),
                        local=task is not None, workers=workers, rate_limits=rates)


def _known(local: dict[str, Task], registrations: WorkerRegistrations) -> KnownTaskNames:
    return KnownTaskNames(local=frozenset(local),
                          on_workers=frozenset().union(*registrations.by_worker.values()),
                          complete=registrations.complete, broker_ok=registrations.broker_ok)


def known_task_names() -> KnownTaskNames:
    """The task names registered here or on a live worker, and whether every worker answered."""
    return _known(_local_tasks(), worker_registrations())


# Celery's own tasks that make sense on a schedule (every worker registers them, unlisted).
SCHEDULABLE_BUILTINS = frozenset({"celery.backend_cleanup"})


def _builtins_here() -> frozenset[str]:
    """Celery's builtin tasks a schedule may name, as this app registers them."""
    return frozenset(name for name in celery_app().tasks if name in SCHEDULABLE_BUILTINS)


def task_registered(names: set[str]) -> dict[str, bool | None]:
    """For each of `names`: registered here or on a live worker (True), nowhere live (False), or
    unknown (None: not every worker answered). Asks the workers only about names unknown here.

    The one answer the schedule list, the editor and the import give to "is this a task?".
    """
    builtins = _builtins_here()
    known: dict[str, bool | None] = {name: True for name in names
                                     if name in builtins or task_local(name) is not None}
    missing = set(names) - set(known)
    if missing:
        registrations = worker_registrations()
        on_workers = set().union(*registrations.by_worker.values())
        for name in missing:
            known[name] = True if name in on_workers else (False if registrations.complete else None)
    return known


def schedulable_task_names() -> tuple[tuple[str, ...], bool]:
    """Every task name a schedule may use (registered here or on a live worker), sorted, and
    whether every worker answered."""
    known = known_task_names()
    return tuple(sorted(known.names | _builtins_here())), known.complete


def arguments_problem(task_name: str, args: list, kwargs: dict) -> str:
    """Why `args` and `kwargs` do not fit the signature of `task_name` here ("" when they do, or
    when the task cannot be imported here and there is nothing to check against)."""
    signature = task_signature(task_name)
    if signature is None:
        return ""
    try:
        signature.bind(*args, **kwargs)
    except TypeError as exc:
        return f"The arguments do not fit {task_name}{signature}: {exc}."
    return ""


def send_refusals(*, user: User | AnonymousUser | None, name: str, queue: str,
                  priority: int | None = None) -> dict[str, str]:
    """Why the console will not send task `name` to `queue` at `priority`, by part ("task",
    "queue", "priority"); empty when it will. Forms show them, services refuse with them.

    The task: not on the deny list, allowed for the person's groups, and one the console knows
    (see KnownTaskNames.refusal). The queue: one the console knows, never Celery's own. The
    priority: within what the broker takes for that queue.
    """
    refusals = {}
    if task := task_name_refusal(user, name) or known_task_names().refusal(name):
        refusals["task"] = task
    if queue_problem := queue_refusal(queue):
        refusals["queue"] = queue_problem
    elif priority_problem := priority_range(queue).refusal(priority):
        refusals["priority"] = priority_problem
    return refusals


def task_catalog() -> TaskCatalog:
    """Every task registered here or on a live worker, by name; banners say what could not be read."""
    local = _local_tasks()
    registrations = worker_registrations()
    names = sorted(_known(local, registrations).names)
    return TaskCatalog(
        taken_at=timezone.now(),
        entries=tuple(_entry(name, local.get(name), registrations) for name in names),
        workers=tuple(sorted(registrations.by_worker)),
        broker_ok=registrations.broker_ok,
        banners=registrations.banners,
        complete=registrations.complete,
    )


def _options(task: Task | None) -> tuple[tuple[str, str], ...]:
    if task is None:
        return ()
    values = ((option, getattr(task, option, None)) for option in TASK_OPTIONS)
    return tuple((option, str(value)) for option, value in values if value is not None)


def task_detail(name: str) -> TaskDetail | None:
    """One task in full, or None when it is registered neither here nor on any live worker."""
    catalog = task_catalog()
    entry = catalog.entry(name)
    if entry is None and catalog.complete:
        return None
    task = task_local(name)
    signature = task_signature(name) if task is not None else None
    return TaskDetail(
        name=name,
        entry=entry,
        docstring=inspect.cleandoc(task.__doc__ or "") if task is not None else "",
        signature=str(signature) if signature is not None else "",
        parameters=(None if signature is None
                    else tuple(_parameter(p) for p in signature.parameters.values())),
        routing=task_routing(name),
        options=_options(task),
        broker_ok=catalog.broker_ok,
        banners=catalog.banners,
    )
