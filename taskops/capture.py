"""Faithful call capture: the real call, recorded where the task runs, kept in TaskResult.meta; reprs kept masked."""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from celery.signals import task_prerun
from celery.utils.saferepr import saferepr
from django.db.models.signals import pre_save
from django.dispatch import receiver
from django_celery_results.models import TaskResult
from kombu.utils.json import dumps, loads

from taskops.conf import config
from taskops.masking import PARTS, sender_masked, stored_repr_mask, value_mask

log = logging.getLogger(__name__)

CALL_KEY = "taskops_call"
RETRY_OF_HEADER = "taskops_retry_of"
CAPTURE_VERSION = 1


@dataclass(frozen=True)
class CapturedCall:
    """Everything needed to send the same call again, with arguments as the task received them."""

    task: str
    args: list
    kwargs: dict
    exchange: str = ""
    routing_key: str = ""
    priority: int | None = None
    time_limit: float | None = None
    soft_time_limit: float | None = None
    headers: dict[str, Any] = field(default_factory=dict)
    root_id: str | None = None
    parent_id: str | None = None
    # The parts ("args", "kwargs") whose repr the sender chose (argsrepr/kwargsrepr) to hide
    # them; None when the capture predates this record (see selectors.runs).
    sender_masked: frozenset[str] | None = None

    @property
    def retry_of(self) -> str | None:
        return self.headers.get(RETRY_OF_HEADER)


@dataclass(frozen=True)
class NoCapture:
    """Why a run cannot be replayed faithfully."""

    reason: str


def _excluded(task_name: str) -> bool:
    patterns = config.capture_exclude
    return any(fnmatch.fnmatchcase(task_name, pattern) for pattern in patterns)


def _repr_limits(task) -> dict[str, tuple[int, int]]:
    """Per part, the size and depth Celery cuts its argument reprs at (as the sender did)."""
    app = task.app
    maxlevels = getattr(app.conf, "task_repr_maxlevels", 3)
    return {"args": (app.amqp.argsrepr_maxsize, maxlevels),
            "kwargs": (app.amqp.kwargsrepr_maxsize, maxlevels)}


def _sender_masked_parts(task, values: dict[str, Any]) -> list[str]:
    """The parts ("args", "kwargs") whose repr from the sender hides more than masking by key."""
    limits = _repr_limits(task)
    return [part for part, value in values.items()
            if sender_masked(getattr(task.request, f"{part}repr", None), value,
                             maxsize=limits[part][0], maxlevels=limits[part][1])]


def _reprs_mask(task, values: dict[str, Any], sender_masked_parts: list[str]) -> None:
    """Give the run the reprs the console shows: the sender's where it masked a part, elsewhere
    Celery's repr of the values masked by key (exact, where masking a repr's text must sometimes
    hide it whole).

    django-celery-results stores `request.argsrepr`/`kwargsrepr` as the run's task_args and
    task_kwargs, which pages show and search reads. A retry Celery sends itself (autoretry,
    `self.retry()`) makes its reprs again from the real values but carries `request.headers`,
    whose reprs win: so they go there too, and the retry shows what this run shows.
    """
    limits = _repr_limits(task)
    headers = dict(task.request.headers or {})
    for part, value in values.items():
        name = f"{part}repr"
        shown = getattr(task.request, name, None)
        if shown is None:
            continue
        if part not in sender_masked_parts:
            maxsize, maxlevels = limits[part]
            shown = saferepr(value_mask(value), maxsize, maxlevels=maxlevels)
            setattr(task.request, name, shown)
        headers[name] = shown
    task.request.headers = headers


def call_record(task, args, kwargs, sender_masked_parts: Iterable[str] = ()) -> dict:
    """The capture of the call `task` is about to run, as stored in TaskResult.meta."""
    request = task.request
    delivery = getattr(request, "delivery_info", None) or {}
    soft, hard = (list(request.timelimit) + [None, None])[:2] if request.timelimit else (None, None)
    call = {
        "v": CAPTURE_VERSION,
        "task": task.name,
        "args": list(args or ()),
        "kwargs": dict(kwargs or {}),
        "exchange": delivery.get("exchange") or "",
        "routing_key": delivery.get("routing_key") or "",
        "priority": delivery.get("priority"),
        "time_limit": hard,
        "soft_time_limit": soft,
        "headers": {RETRY_OF_HEADER: getattr(request, RETRY_OF_HEADER, None)},
        "root_id": getattr(request, "root_id", None),
        "parent_id": getattr(request, "parent_id", None),
        "sender_masked": list(sender_masked_parts),
    }
    limit = config.capture_max_bytes
    size = len(dumps(call))
    if size > limit:
        return {"v": CAPTURE_VERSION, "refused": f"arguments too large to keep ({size} bytes, "
                f"limit TASKOPS_CAPTURE_MAX_BYTES={limit})"}
    return call


@task_prerun.connect
def call_capture(sender=None, task_id=None, task=None, args=None, kwargs=None, **_) -> None:
    """Before a task runs, put its real call into request.meta (django-celery-results stores it),
    with which parts the sender masked, and mask the reprs the results table will keep."""
    if task is None or _excluded(task.name):
        return
    try:
        values = {"args": list(args or ()), "kwargs": dict(kwargs or {})}
        masked_parts = _sender_masked_parts(task, values)
        meta = dict(getattr(task.request, "meta", None) or {})
        meta[CALL_KEY] = call_record(task, args, kwargs, masked_parts)
        task.request.meta = meta
        _reprs_mask(task, values, masked_parts)
    except Exception:  # never let the console break a task
        log.exception("TaskOps: could not capture the call of %s[%s]", task.name, task_id)


@receiver(pre_save, sender=TaskResult)  # every write of a run: from a worker or the console
def stored_reprs_mask(sender=None, instance=None, **_) -> None:
    """Keep a run's argument reprs (task_args/task_kwargs: shown, exported, searched) masked by key.

    Covers the writes no capture sees: a run revoked before it started, a worker lost or a
    time limit hit (Celery stores the message's reprs), a run sent with arguments by the console.
    """
    try:
        instance.task_args = stored_repr_mask(instance.task_args)
        instance.task_kwargs = stored_repr_mask(instance.task_kwargs)
    except Exception:  # never let the console break a results write; never store it unmasked
        log.exception("TaskOps: could not mask the argument reprs of %s", instance.task_id)
        instance.task_args = instance.task_kwargs = None


def _meta_dict(meta: str | bytes | dict | None) -> dict | None:
    """A run's meta as a dict ({} when empty), or None when it is not a JSON object."""
    if not meta:
        return {}
    try:
        data = loads(meta) if isinstance(meta, (str, bytes)) else meta
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


@receiver(pre_save, sender=TaskResult)
def stored_call_keep(sender=None, instance=None, using=None, **_) -> None:
    """Keep a run's captured call through every later state write of the same run.

    The worker's main process writes some states itself (RETRY when it lost the broker
    mid-task, FAILURE when a pool process died or hit its time limit, REVOKED on terminate);
    it never saw the call captured in the pool process, and django-celery-results writes its
    meta as `{"children": []}`. One read of the stored meta, only for such writes.
    """
    try:
        if instance.pk is None or instance._state.adding or _excluded(instance.task_name or ""):
            return
        meta = _meta_dict(instance.meta)
        if meta is None or CALL_KEY in meta:
            return
        stored = (TaskResult.objects.using(using).filter(pk=instance.pk)
                  .values_list("meta", flat=True).first())
        call = (_meta_dict(stored) or {}).get(CALL_KEY)
        if call:
            instance.meta = dumps({**meta, CALL_KEY: call})
    except Exception:  # never let the console break a results write
        log.exception("TaskOps: could not keep the captured call of %s", instance.task_id)


def call_from_meta(meta: str | dict | None) -> CapturedCall | NoCapture:
    """Read the captured call back from a TaskResult's meta (JSON text or already decoded)."""
    if not meta:
        return NoCapture("no call was captured: the run never started on a worker with TaskOps "
                         "loaded, or it predates the console")
    try:
        data = loads(meta) if isinstance(meta, (str, bytes)) else meta
    except ValueError:
        return NoCapture("the stored call cannot be decoded")
    call = (data or {}).get(CALL_KEY) if isinstance(data, dict) else None
    if not call:
        return NoCapture("no call was captured for this run (capture is off for this task, or "
                         "the run predates the console)")
    if call.get("refused"):
        return NoCapture(str(call["refused"]))
    if call.get("v") != CAPTURE_VERSION:
        return NoCapture(f"the call was captured in an unknown format (version {call.get('v')})")
    return CapturedCall(
        task=call["task"],
        args=list(call.get("args") or []),
        kwargs=dict(call.get("kwargs") or {}),
        exchange=call.get("exchange") or "",
        routing_key=call.get("routing_key") or "",
        priority=call.get("priority"),
        time_limit=call.get("time_limit"),
        soft_time_limit=call.get("soft_time_limit"),
        headers={k: v for k, v in (call.get("headers") or {}).items() if v is not None},
        root_id=call.get("root_id"),
        parent_id=call.get("parent_id"),
        sender_masked=(frozenset(p for p in call["sender_masked"] if p in PARTS)
                       if isinstance(call.get("sender_masked"), list) else None),
    )
