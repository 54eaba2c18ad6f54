"""Reads of task runs: one run in full, masked unless revealed (call, result, traceback, links, retries), and retry jobs."""

from __future__ import annotations

import json
from contextlib import suppress
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from uuid import UUID

from django.db import connections
from django.db.models import CharField, F, Func, Q, QuerySet
from django_celery_results.models import TaskResult
from kombu.utils.json import dumps as kombu_dumps
from kombu.utils.json import loads as kombu_loads

from taskops.capture import CapturedCall, NoCapture, call_from_meta
from taskops.conf import celery_app
from taskops.masking import arguments_shown, sender_masked, stored_repr, text_mask, value_mask
from taskops.models import QueuePause, RetryJob, RetryJobItem, RunRetry, WorkerSeen
from taskops.selectors.live import configured_queue_names

FINISHED = ("SUCCESS", "FAILURE", "REVOKED")


def _display_default(value):
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, (UUID, Decimal)):
        return str(value)
    if isinstance(value, bytes):
        return repr(value)
    return repr(value)


def display_json(value) -> str:
    """Pretty JSON for reading (dates and UUIDs as text); never raises."""
    try:
        return json.dumps(value, indent=2, ensure_ascii=False, default=_display_default, sort_keys=True)
    except (TypeError, ValueError):
        return repr(value)


EDIT_LINE = 72  # a list or object that fits on a line of the edit form stays on one


def _typed(node) -> bool:
    return isinstance(node, dict) and set(node) == {"__type__", "__value__"}


def _edit_text(node, indent: str) -> str:
    if _typed(node) and node["__type__"] == "uuid" and isinstance(node["__value__"], dict):
        # kombu writes {"hex": "2c6d...56"}; UUID(hex=...) reads the familiar dashed form too.
        with suppress(TypeError, ValueError):
            node = {**node, "__value__": {"hex": str(UUID(**node["__value__"]))}}
    one_line = json.dumps(node, ensure_ascii=False)
    values = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
    flat = all(_typed(v) or not isinstance(v, (dict, list)) for v in values)
    if _typed(node) or not isinstance(node, (dict, list)) or flat and len(node) <= 1 or (
            len(indent) + len(one_line) <= EDIT_LINE) or flat and not isinstance(node, dict):
        return one_line
    inner = indent + "  "
    if isinstance(node, list):
        items = [inner + _edit_text(item, inner) for item in node]
        return "[\n" + ",\n".join(items) + "\n" + indent + "]"
    items = [f"{inner}{json.dumps(key, ensure_ascii=False)}: {_edit_text(item, inner)}"
             for key, item in node.items()]
    return "{\n" + ",\n".join(items) + "\n" + indent + "}"


def editable_json(value) -> str:
    """JSON that the edit form turns back into the same values (kombu's typed JSON).

    Laid out to be edited: a date, UUID or decimal is one line, {"__type__": "uuid",
    "__value__": "..."}, as kombu writes it, and short lists and objects stay on one line.
    """
    return _edit_text(json.loads(kombu_dumps(value)), "")


@dataclass(frozen=True)
class RetryLink:
    task_id: str
    state: str
    requested_at: datetime
    requested_by: str
    edited: bool
    attempt: int = 1


@dataclass(frozen=True)
class LatestRetry:
    """A run's latest console retry: its id and its attempt number (1 for the first)."""

    retry_task_id: str
    attempt: int


def latest_retries(task_ids: list[str]) -> dict[str, LatestRetry]:
    """The latest console retry of each of these runs that was retried at all (one indexed query)."""
    latest: dict[str, LatestRetry] = {}
    rows = (RunRetry.objects.filter(original_task_id__in=task_ids).order_by()
            .values_list("original_task_id", "retry_task_id", "attempt"))
    for original, retry_id, attempt in rows:
        if original not in latest or attempt > latest[original].attempt:
            latest[original] = LatestRetry(retry_id, attempt)
    return latest


@dataclass(frozen=True)
class RunDetail:
    run: TaskResult
    call: CapturedCall | None
    no_capture_reason: str
    args_text: str
    kwargs_text: str
    result_text: str
    traceback_text: str
    children: tuple[str, ...]
    retries: tuple[RetryLink, ...]
    retry_of: str | None
    edit_args: str
    edit_kwargs: str
    hidden: bool = False  # some value is hidden unless revealed (masked by key or by the sender)
    revealed: bool = False  # the real values are shown (a reveal, audited)

    @property
    def finished(self) -> bool:
        return self.run.status in FINISHED

    @property
    def duration(self) -> timedelta | None:
        if self.run.date_started and self.run.date_done:
            return self.run.date_done - self.run.date_started
        return None

    @property
    def parent_id(self) -> str | None:
        """The run that sent this one; Celery's own retries name the run itself, which is no parent."""
        parent = self.call.parent_id if self.call else None
        return parent if parent and parent != self.run.task_id else None

    @property
    def latest_retry(self) -> RetryLink | None:
        """The retry sent last (a run retried already is retried again only when asked explicitly)."""
        return max(self.retries, key=lambda r: r.attempt, default=None)

    @property
    def following(self) -> bool:
        """The page keeps refreshing while this run or one of its retries is not finished."""
        return not self.finished or any(r.state not in FINISHED for r in self.retries)


def _children(meta: str | None) -> tuple[str, ...]:
    try:
        data = kombu_loads(meta) if meta else {}
    except ValueError:
        return ()
    found: list[str] = []

    def walk(node) -> None:
        if isinstance(node, str):
            found.append(node)
        elif isinstance(node, (list, tuple)) and node:
            walk(node[0])  # (id, parent) pairs nest the id first

    for child in (data or {}).get("children") or []:
        walk(child)
    return tuple(dict.fromkeys(found))


def _result_text(run: TaskResult, revealed: bool) -> tuple[str, bool]:
    """The result as the page shows it, and whether values in it are hidden unless revealed.

    Masked by key, and read as text too: an error's message may quote the arguments.
    """
    if run.result in (None, ""):
        return "", False
    try:
        result = json.loads(run.result)
    except (TypeError, ValueError):
        real = str(run.result)
        masked = text_mask(real)
    else:
        real, masked = display_json(result), text_mask(display_json(value_mask(result)))
    return (real if revealed else masked), masked != real


def _sender_masked_parts(call: CapturedCall, run: TaskResult) -> frozenset[str]:
    """The parts of the call its sender masked: recorded at capture, else told from the reprs
    the results table kept (a capture made before the record: not Celery's repr of the values)."""
    if call.sender_masked is not None:
        return call.sender_masked
    amqp = celery_app().amqp
    maxlevels = celery_app().conf.task_repr_maxlevels
    return frozenset(
        part for part, stored, values, maxsize in (
            ("args", run.task_args, call.args, amqp.argsrepr_maxsize),
            ("kwargs", run.task_kwargs, call.kwargs, amqp.kwargsrepr_maxsize))
        if sender_masked(stored_repr(stored, masked=False), values, maxsize=maxsize,
                         maxlevels=maxlevels)
    )


def _arguments_text(run: TaskResult, call: CapturedCall | None, revealed: bool) -> tuple[str, str, bool]:
    """The args and kwargs as the page shows them, and whether values in them are hidden unless revealed.

    A part the sender masked is shown as the sender's repr; the rest as the captured values,
    masked by key. Without a capture, the reprs the results table kept (masked by key).
    """
    stored = (run.task_args, run.task_kwargs)
    if call is None:
        masked = [stored_repr(value) or "" for value in stored]
        real = [stored_repr(value, masked=False) or "" for value in stored]
        return (*(real if revealed else masked), masked != real)
    shown = arguments_shown(call.args, call.kwargs, call.sender_masked or ())
    hidden = bool(call.sender_masked) or shown != (call.args, call.kwargs)
    if revealed:
        return display_json(call.args), display_json(call.kwargs), hidden
    texts = [
        (stored_repr(kept) or "(hidden by its sender)") if part in call.sender_masked
        else display_json(values)
        for part, values, kept in zip(("args", "kwargs"), shown, stored)
    ]
    return texts[0], texts[1], hidden


def run_detail(task_id: str, *, revealed: bool = False) -> RunDetail | None:
    """Everything the run page shows, or None when no run has this id.

    Values are masked (by key, and what the sender masked) unless `revealed`: for a reveal,
    which the caller has allowed and audited.
    """
    run = TaskResult.objects.filter(task_id=task_id).first()
    if run is None:
        return None
    captured = call_from_meta(run.meta)
    call = captured if isinstance(captured, CapturedCall) else None
    if call is not None:
        call = replace(call, sender_masked=_sender_masked_parts(call, run))
    args_text, kwargs_text, arguments_hidden = _arguments_text(run, call, revealed)
    result_text, result_hidden = _result_text(run, revealed)
    traceback_masked = text_mask(run.traceback or "")
    # The edit form shows what the page shows: •••• stands for a hidden value.
    edit_args, edit_kwargs = (arguments_shown(call.args, call.kwargs, call.sender_masked)
                              if call else ([], {}))
    links = list(RunRetry.objects.filter(original_task_id=task_id).select_related("requested_by"))
    states = dict(TaskResult.objects.filter(task_id__in=[r.retry_task_id for r in links])
                  .values_list("task_id", "status"))
    retry_of = (call.retry_of if call else None) or (
        RunRetry.objects.filter(retry_task_id=task_id).values_list("original_task_id", flat=True).first()
    )
    return RunDetail(
        run=run,
        call=call,
        no_capture_reason=captured.reason if isinstance(captured, NoCapture) else "",
        args_text=args_text,
        kwargs_text=kwargs_text,
        result_text=result_text,
        traceback_text=(run.traceback or "") if revealed else traceback_masked,
        children=_children(run.meta),
        retries=tuple(
            RetryLink(r.retry_task_id, states.get(r.retry_task_id, "PENDING"), r.requested_at,
                      r.requested_by.get_username() if r.requested_by else "system", r.edited,
                      r.attempt)
            for r in links
        ),
        retry_of=retry_of,
        edit_args=editable_json(edit_args),
        edit_kwargs=editable_json(edit_kwargs),
        hidden=arguments_hidden or result_hidden or traceback_masked != (run.traceback or ""),
        revealed=revealed,
    )


@dataclass(frozen=True)
class RetryJobDetail:
    job: RetryJob
    refused: tuple[RetryJobItem, ...]
    recent: tuple[RunRetry, ...]

    @property
    def done(self) -> int:
        """Runs settled: sent, refused or skipped."""
        return self.job.sent + self.job.refused + self.job.skipped

    @property
    def percent(self) -> int:
        return 100 if not self.job.total else round(100 * self.done / self.job.total)


def retry_job_detail(job_id: int) -> RetryJobDetail | None:
    job = RetryJob.objects.filter(pk=job_id).first()
    if job is None:
        return None
    refused = tuple(job.items.filter(state=RetryJobItem.State.REFUSED).order_by("id")[:50])
    recent = tuple(job.retries.order_by("-id")[:20])
    return RetryJobDetail(job=job, refused=refused, recent=recent)


@dataclass(frozen=True)
class RetryCount:
    """Matching runs of one state and task, and how many of them were retried already."""

    state: str
    task_name: str
    runs: int
    retried: int


@dataclass(frozen=True)
class RetryPreview:
    """What retrying every matching run would send, counted before anything is sent."""

    counts: tuple[RetryCount, ...]  # by state and task, most runs first
    total: int  # matching runs, counted up to cap + 1
    retried: int  # of which retried already (skipped unless they are included)
    cap: int

    @property
    def capped(self) -> bool:
        """More than `cap` runs match: the counts stop there (and a job that large is refused)."""
        return self.total > self.cap

    def sending(self, include_retried: bool) -> int:
        return self.total if include_retried else self.total - self.retried


def retry_preview(runs: QuerySet, *, cap: int) -> RetryPreview:
    """Count `runs` (the list's filtered runs) by state and task, and those retried already.

    One grouped query over at most cap + 1 of them, in no order (sorting them first cost three
    times as much at 1M runs; past the cap only "more than cap" is said, so which ones does
    not matter), each looked up among the retries' originals.
    """
    matching = runs.order_by().values_list("task_id", "status", "task_name")[:cap + 1]
    inner, params = matching.query.sql_with_params()
    retries = connections[runs.db].ops.quote_name(RunRetry._meta.db_table)
    sql = (f"SELECT status, task_name, retried, COUNT(*) FROM (SELECT m.status, m.task_name, "
           f"EXISTS (SELECT 1 FROM {retries} r WHERE r.original_task_id = m.task_id) AS retried "
           f"FROM ({inner}) m) c GROUP BY status, task_name, retried")
    grouped: dict[tuple[str, str], list[int]] = {}
    with connections[runs.db].cursor() as cursor:
        cursor.execute(sql, params)
        for state, task_name, retried, count in cursor.fetchall():
            totals = grouped.setdefault((state or "", task_name or ""), [0, 0])
            totals[0] += count
            totals[1] += count if retried else 0
    counts = sorted((RetryCount(state, task, runs_, retried) for (state, task), (runs_, retried)
                     in grouped.items()), key=lambda c: (-c.runs, c.state, c.task_name))
    return RetryPreview(counts=tuple(counts), total=sum(c.runs for c in counts),
                        retried=sum(c.retried for c in counts), cap=cap)


def run_search_filter(term: str) -> Q:
    """A task id matches exactly; anything else is looked for inside the stored arguments."""
    term = term.strip()
    try:
        UUID(term)
        return Q(task_id=term)
    except ValueError:
        return Q(task_id=term) | Q(task_args__contains=term) | Q(task_kwargs__contains=term)


class RunQueue(Func):
    """A run's queue: the routing key of its captured call, NULL when nothing was captured.

    Written exactly as migration 0008 indexes it (a function on PostgreSQL, json_extract on
    SQLite), so a queue's runs, newest first, are an index range scan on millions of rows.
    Other databases get no queue (NULL).
    """

    output_field = CharField()
    templates = {
        "postgresql": "taskops_run_queue(%(expressions)s)",
        "sqlite": "CASE WHEN json_valid(%(expressions)s) "
                  "THEN json_extract(%(expressions)s, '$.taskops_call.routing_key') END",
    }

    def __init__(self) -> None:
        super().__init__(F("meta"))

    def as_sql(self, compiler, connection, **extra_context):
        template = self.templates.get(connection.vendor)
        if template is None:
            return "NULL", []
        return super().as_sql(compiler, connection, template=template, **extra_context)


def run_queue_names() -> list[str]:
    """Queues to filter runs by, without reading the results table.

    The queues of the Celery configuration, those the workers seen by the console consume
    (recorded when they start), and paused ones.
    """
    names = set(configured_queue_names())
    for queues in WorkerSeen.objects.values_list("queues", flat=True):
        names.update(q for q in queues or () if isinstance(q, str) and q)
    names.update(QueuePause.objects.values_list("queue", flat=True))
    return sorted(names)
