"""Schedule import and export: a dry run shows what a file creates and changes; the confirmed run writes it all or nothing."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from typing import Any

from django.core.exceptions import ValidationError
from django.db import DatabaseError, transaction
from django_celery_beat.models import PeriodicTask

from taskops.models import AuditEntry, PendingAction
from taskops.schedules.definitions import (
    SCHEDULE_KINDS,
    definition_apply,
    definition_changes,
    definition_of,
)
from taskops.schedules.transfer import (
    TransferError,
    file_rows,
    format_content_type,
    import_entries,
    import_params,
    payload_load,
    row_definition,
    schedules_export,
    unknown_columns,
)
from taskops.selectors.catalog import arguments_problem, task_registered
from taskops.services.approvals import approvable, dangerous_gate
from taskops.services.base import ActionOutcome, Actor, AuditedAction
from taskops.services.schedule_versions import schedule_version_record

ACTION = "schedule.import"
_TEXT_LIMITS = {"name": 200, "task": 200, "queue": 200, "exchange": 200, "routing_key": 200}
# What a row that cannot be written raises inside its savepoint (model checks, bad values, the database).
_WRITE_ERRORS = (ValidationError, DatabaseError, ValueError, TypeError, KeyError, OverflowError)

Entry = tuple[int, dict[str, Any]]


@dataclass(frozen=True)
class PlannedSchedule:
    """One schedule of the file and what importing it does: created, changed (with the fields) or unchanged."""

    row: int
    name: str
    action: str
    changes: tuple[dict, ...] = ()
    definition: dict = field(default_factory=dict, compare=False)
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class RowProblem:
    row: int
    name: str
    message: str


@dataclass(frozen=True)
class ImportPlan:
    """What a file would do; nothing of it is written yet."""

    file_name: str
    file_format: str
    entries: tuple[Entry, ...]
    schedules: tuple[PlannedSchedule, ...]
    problems: tuple[RowProblem, ...]
    notes: tuple[str, ...] = ()

    def _with(self, action: str) -> list[PlannedSchedule]:
        return [s for s in self.schedules if s.action == action]

    @property
    def created(self) -> list[PlannedSchedule]:
        return self._with("created")

    @property
    def changed(self) -> list[PlannedSchedule]:
        return self._with("changed")

    @property
    def unchanged(self) -> list[PlannedSchedule]:
        return self._with("unchanged")

    @property
    def warning_count(self) -> int:
        return sum(len(s.warnings) for s in self.schedules)

    @property
    def can_import(self) -> bool:
        return not self.problems and bool(self.created or self.changed)

    @property
    def fingerprint(self) -> str:
        return plan_fingerprint(self.schedules)


def plan_fingerprint(schedules) -> str:
    """A digest of what an import does (names, actions, field changes): equal digests, equal imports."""
    text = json.dumps([[s.name, s.action, list(s.changes)] for s in schedules],
                      sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def counts_text(created: int, changed: int, unchanged: int) -> str:
    return f"{created} created, {changed} changed, {unchanged} unchanged"


def _merged(before: dict[str, Any] | None, part: dict[str, Any]) -> dict[str, Any]:
    """The whole definition after the import: the row's fields over the current ones (or a new schedule's)."""
    base = before if before is not None else definition_of(PeriodicTask(name=part["name"]))
    return {**base, **part}


def definition_problems(definition: dict[str, Any]) -> list[str]:
    """What the model would not catch when writing `definition` (the rest is caught by writing it)."""
    problems = []
    if (definition.get("schedule") or {}).get("kind") not in SCHEDULE_KINDS:
        problems.append("a new schedule needs a schedule_kind and its columns")
    if not definition.get("task"):
        problems.append("task is empty")
    for name, limit in _TEXT_LIMITS.items():
        if len(definition.get(name) or "") > limit:
            problems.append(f"{name} is longer than {limit} characters")
    for name, kind, label in (("args", list, "list"), ("kwargs", dict, "object"),
                              ("headers", dict, "object")):
        if not isinstance(definition.get(name), kind):
            problems.append(f"{name} must be a JSON {label}")
    return problems


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, ValidationError) and hasattr(exc, "error_dict"):
        return "; ".join(f"{name}: {' '.join(messages)}" if name != "__all__" else " ".join(messages)
                         for name, messages in exc.message_dict.items())
    if isinstance(exc, ValidationError):
        return "; ".join(exc.messages)
    return str(exc) or exc.__class__.__name__


def _import_run(entries: list[Entry], *, actor: Actor | None, reason: str, record: bool,
                ) -> tuple[list[PlannedSchedule], list[RowProblem]]:
    """Write each entry (in the caller's transaction); `record` keeps a version of each change."""
    names = [definition["name"] for _, definition in entries]
    existing_rows = PeriodicTask.objects.filter(name__in=names).select_related(*SCHEDULE_KINDS)
    if record:
        existing_rows = existing_rows.select_for_update(of=("self",))
    existing = {task.name: task for task in existing_rows}
    planned: list[PlannedSchedule] = []
    problems: list[RowProblem] = []
    first_row: dict[str, int] = {}
    for number, part in entries:
        name = part["name"]
        if name in first_row:
            problems.append(RowProblem(number, name, f"the name appears twice (rows {first_row[name]} "
                                                     f"and {number})"))
            continue
        first_row[name] = number
        task = existing.get(name)
        before = definition_of(task) if task is not None else None
        after = _merged(before, part)
        if before is not None and not definition_changes(before, after):
            planned.append(PlannedSchedule(number, name, "unchanged", (), after))
            continue
        found = definition_problems(after)
        if found:
            problems.append(RowProblem(number, name, "; ".join(found)))
            continue
        try:
            with transaction.atomic():  # a savepoint: a row that fails leaves the others as they were
                written = definition_apply(after, task)
        except _WRITE_ERRORS as exc:
            problems.append(RowProblem(number, name, _error_text(exc)))
            continue
        result = definition_of(written)
        changes = definition_changes(before, result) if before is not None else []
        action = "created" if before is None else ("changed" if changes else "unchanged")
        if record and action != "unchanged":
            schedule_version_record(actor=actor, action="imported", reason=reason, before=before,
                                    task=written)
        planned.append(PlannedSchedule(number, name, action, tuple(changes), result))
    return planned, problems


def _task_warnings(planned: list[PlannedSchedule]) -> tuple[list[PlannedSchedule], list[str]]:
    """Warn about tasks registered neither here nor on a live worker, and arguments that do not fit
    (as the editor does: selectors.catalog.task_registered and arguments_problem)."""
    changing = [schedule for schedule in planned if schedule.action != "unchanged"]
    registered = task_registered({s.definition.get("task") or "" for s in changing})
    notes = []
    if None in registered.values():
        notes.append("Not every worker answered: a task reported as unknown may be registered on "
                     "one that did not.")
    checked = []
    for schedule in planned:
        warnings = []
        task_name = schedule.definition.get("task") or ""
        if schedule.action != "unchanged" and not registered.get(task_name):
            warnings.append(f"task {task_name} is not registered here or on any live worker")
        elif schedule.action != "unchanged" and (problem := arguments_problem(
                task_name, schedule.definition.get("args") or [],
                schedule.definition.get("kwargs") or {})):
            warnings.append(problem)
        checked.append(replace(schedule, warnings=tuple(warnings)))
    return checked, notes


def schedule_import_preview(*, content: bytes, file_name: str, file_format: str) -> ImportPlan:
    """What importing the file would do, by a dry run that is rolled back: nothing is written.

    Raises TransferError when the file cannot be read at all.
    """
    rows = file_rows(content, file_format)
    entries: list[Entry] = []
    problems: list[RowProblem] = []
    for number, row in rows:
        try:
            entries.append((number, row_definition(row)))
        except ValueError as exc:
            problems.append(RowProblem(number, str(row.get("name") or ""), str(exc)))
    with transaction.atomic():
        planned, run_problems = _import_run(entries, actor=None, reason="", record=False)
        transaction.set_rollback(True)
    planned, notes = _task_warnings(planned)
    ignored = unknown_columns(rows)
    if ignored:
        notes.insert(0, f"Ignored columns: {', '.join(ignored)}.")
    return ImportPlan(
        file_name=file_name, file_format=file_format, entries=tuple(entries),
        schedules=tuple(planned),
        problems=tuple(sorted([*problems, *run_problems], key=lambda p: p.row)),
        notes=tuple(notes),
    )


def schedule_import(*, actor: Actor, payload: str, reason: str) -> ActionOutcome:
    """Carry out a previewed import (the signed `payload` of the preview page).

    Dangerous: needs a reason, and a second person's approval when approvals are on.
    """
    act = AuditedAction(actor, ACTION, "schedules", {}, reason)
    act.refuse_unless_allowed(ACTION)
    try:
        params = payload_load(payload, user_id=actor.db_user.pk if actor.db_user else None)
    except TransferError as exc:
        act.refuse(str(exc))
    return _import_params(actor=actor, params=params, reason=reason, approval=None)


def _import_params(*, actor: Actor, params: dict, reason: str,
                   approval: PendingAction | None) -> ActionOutcome:
    target = str(params.get("file") or "schedules")
    summary = {"file": params.get("file"), "format": params.get("format")}
    act = AuditedAction(actor, ACTION, target, summary, reason)
    act.refuse_unless_allowed(ACTION)
    try:
        entries = import_entries(params)
    except TransferError as exc:
        act.refuse(str(exc))
    carried = import_params(file_name=str(params.get("file") or ""),
                            file_format=str(params.get("format") or ""),
                            entries=entries, fingerprint=str(params.get("fingerprint") or ""))
    act.params = {**carried, "schedules": len(entries)}
    if gate := dangerous_gate(act, approval):
        return gate
    act.params = summary
    refusal = ""
    try:
        with transaction.atomic():
            planned, problems = _import_run(entries, actor=actor, reason=reason, record=True)
            if problems:
                refusal = "Nothing was imported: " + "; ".join(
                    f"row {p.row} ({p.name}): {p.message}" for p in problems[:5])
            elif plan_fingerprint(planned) != carried["fingerprint"]:
                refusal = ("Nothing was imported: the schedules changed since the preview. "
                           "Upload the file again to see what it would do now.")
            if refusal:
                transaction.set_rollback(True)
    except DatabaseError as exc:
        return act.finish(ActionOutcome(
            AuditEntry.Outcome.FAILED, f"Nothing was imported: the database refused ({exc})."))
    if refusal:
        act.refuse(refusal)
    created = [s.name for s in planned if s.action == "created"]
    changed = [s.name for s in planned if s.action == "changed"]
    counts = {"created": len(created), "changed": len(changed),
              "unchanged": len(planned) - len(created) - len(changed)}
    act.params = {**summary, **counts}
    return act.finish(ActionOutcome(
        AuditEntry.Outcome.OK,
        f"Imported {target}: {counts_text(**counts)}.",
        {"created": created, "changed": changed},
    ))


@approvable(ACTION, permission=ACTION)
def _schedule_import_approved(*, actor: Actor, params: dict, reason: str, approval) -> ActionOutcome:
    return _import_params(actor=actor, params=params, reason=reason, approval=approval)


@dataclass(frozen=True)
class ExportedSchedules:
    content: bytes | str
    content_type: str
    count: int


def schedule_export(*, actor: Actor, file_format: str, names: list[str] | None = None) -> ExportedSchedules:
    """Every schedule (or those `names`) as a file in `file_format`; audited. Raises TransferError."""
    tasks = PeriodicTask.objects.select_related(*SCHEDULE_KINDS).order_by("name")
    if names:
        tasks = tasks.filter(name__in=names)
    tasks = list(tasks)
    act = AuditedAction(actor, "schedule.export", file_format,
                        {"format": file_format, "count": len(tasks), "names": (names or [])[:50]})
    act.refuse_unless_allowed("schedule.export")
    try:
        content = schedules_export(tasks, file_format)
    except TransferError as exc:
        act.finish(ActionOutcome(AuditEntry.Outcome.FAILED, str(exc)))
        raise
    act.finish(ActionOutcome(
        AuditEntry.Outcome.OK, f"Exported {len(tasks)} schedule{'s' if len(tasks) != 1 else ''} "
                               f"as {file_format.upper()}."))
    return ExportedSchedules(content=content, content_type=format_content_type(file_format),
                             count=len(tasks))
