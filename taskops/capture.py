"""Faithful call capture: the real call, recorded where the task runs, kept in TaskResult.meta."""

from __future__ import annotations

import fnmatch
import logging
from dataclasses import dataclass, field
from typing import Any

from celery.signals import task_prerun
from kombu.utils.json import dumps, loads

from taskops.conf import config

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


def call_record(task, args, kwargs) -> dict:
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
    }
    limit = config.capture_max_bytes
    size = len(dumps(call))
    if size > limit:
        return {"v": CAPTURE_VERSION, "refused": f"arguments too large to keep ({size} bytes, "
                f"limit TASKOPS_CAPTURE_MAX_BYTES={limit})"}
    return call


@task_prerun.connect
def call_capture(sender=None, task_id=None, task=None, args=None, kwargs=None, **_) -> None:
    """Before a task runs, put its real call into request.meta (django-celery-results stores it)."""
    if task is None or _excluded(task.name):
        return
    try:
        meta = dict(getattr(task.request, "meta", None) or {})
        meta[CALL_KEY] = call_record(task, args, kwargs)
        task.request.meta = meta
    except Exception:  # never let the console break a task
        log.exception("TaskOps: could not capture the call of %s[%s]", task.name, task_id)


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
    )
