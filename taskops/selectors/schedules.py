"""Reads of schedules: list rows (text, next fire, last runs), registered task names, versions."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django_celery_beat.models import PeriodicTask
from django_celery_results.models import TaskResult

from taskops.beat_dispatch import dispatch_read
from taskops.models import ScheduleVersion
from taskops.schedules.beat import BeatTiming, beat_last_run, beat_timing
from taskops.schedules.definitions import definition_of, schedule_of
from taskops.schedules.preview import FireTime, Preview, preview, schedule_zone_name
from taskops.selectors.catalog import schedulable_task_names, task_catalog, task_registered
from taskops.selectors.runs import display_json

STRIP_LENGTH = 12  # runs in a schedule's history strip
SCHEDULE_RELATIONS = ("crontab", "interval", "solar", "clocked")


@dataclass(frozen=True)
class RunCell:
    """One run of a schedule, as its history strip shows it."""

    task_id: str
    status: str
    created: datetime | None
    done: datetime | None


@dataclass(frozen=True)
class ScheduleRow:
    """What the list shows about one schedule beyond its own columns."""

    schedule: dict[str, Any]
    text: str
    timezone: str
    next_fire: FireTime | None
    next_state: str  # "", "disabled", "expired", "no more runs", or the preview's error
    runs: tuple[RunCell, ...]  # newest first
    task_registered: bool | None  # None: not known here, and the workers could not all be asked

    @property
    def last_run(self) -> RunCell | None:
        return self.runs[0] if self.runs else None


@dataclass(frozen=True)
class TaskNames:
    """The task names a schedule may use: registered here or on a live worker."""

    names: tuple[str, ...]
    complete: bool  # every live worker answered: a name missing here is registered nowhere live
    banners: tuple[str, ...] = ()


def task_names() -> TaskNames:
    """Every task name a schedule may use (the console's registry and each live worker's), for the form."""
    catalog = task_catalog()  # its banners say which workers could not be asked
    names, complete = schedulable_task_names()
    return TaskNames(names=names, complete=complete, banners=catalog.banners)


def _newest_runs_sql(names: int, per_name: int) -> str:
    """One query for the newest runs of `names` schedules, each branch on the run list's index.

    Written out because building the same query with the ORM (a hundred subqueries) costs three
    times as long as running it. LIMIT inside IN works on PostgreSQL and SQLite.
    """
    qn = connection.ops.quote_name
    meta = TaskResult._meta
    table = qn(meta.db_table)
    pk, name, task_id, status, created, done = (
        qn(meta.get_field(f).column) for f in
        ("id", "periodic_task_name", "task_id", "status", "date_created", "date_done"))
    branch = (f"{pk} IN (SELECT {pk} FROM {table} WHERE {name} = %s "
              f"ORDER BY {done} DESC, {pk} DESC LIMIT {int(per_name)})")
    return (f"SELECT {pk}, {name}, {task_id}, {status}, {created}, {done} FROM {table} "
            f"WHERE {' OR '.join([branch] * names)} ORDER BY {done} DESC, {pk} DESC")


def schedule_runs(names: list[str], *, per_name: int = STRIP_LENGTH) -> dict[str, list[RunCell]]:
    """The latest runs of each named schedule, newest first: one query, whatever the number of names.

    Each name's runs come from the (periodic_task_name, date_done, id) index, at most `per_name`.
    """
    names = list(dict.fromkeys(n for n in names if n))
    runs: dict[str, list[RunCell]] = {name: [] for name in names}
    if not names:
        return runs
    # Plain rows, not model instances: building 1,200 TaskResults took twice the query's time.
    with connection.cursor() as cursor:
        cursor.execute(_newest_runs_sql(len(names), per_name), names)
        rows = cursor.fetchall()
    for _pk, name, task_id, status, created, done in rows:
        runs[name].append(RunCell(task_id=task_id, status=status, created=_aware(created),
                                  done=_aware(done)))
    return runs


def _aware(value: datetime | str | None) -> datetime | None:
    """A datetime column as the ORM gives it: aware, in UTC (SQLite returns it naive, or as text)."""
    if isinstance(value, str):
        value = parse_datetime(value)
    if value is not None and settings.USE_TZ and timezone.is_naive(value):
        value = timezone.make_aware(value, connection.timezone)
    return value


def beat_last_runs(tasks: list[PeriodicTask]) -> dict[int, datetime | None]:
    """The last run beat counts each schedule's next run from, by primary key (one cache read).

    Beat's own record of its sends (taskops.beat_dispatch) with the last_run_at it writes when it
    syncs: see schedules.beat.beat_last_run. Runs of the results table are not used: a run now
    from the console carries the schedule's name too, and beat does not count from it.
    """
    _at, _name, sent = dispatch_read([task.name for task in tasks]) if tasks else (None, "", {})
    return {task.pk: beat_last_run(last_run_at=task.last_run_at, sent_at=sent.get(task.name),
                                   changed_at=task.date_changed) for task in tasks}


def schedule_preview_of(task: PeriodicTask, *, last_run_at: datetime | None, count: int = 1,
                        now: datetime | None = None, timing: BeatTiming | None = None) -> Preview:
    """The next `count` fire times of a stored schedule (its relations loaded or select_related),
    beat counting from `last_run_at` (beat_last_runs)."""
    return preview(
        schedule_of(task), now=now or timezone.now(), count=count, last_run_at=last_run_at,
        changed_at=task.date_changed, start_time=task.start_time, expires=task.expires,
        one_off=task.one_off, enabled=task.enabled, timing=timing,
    )


def _row(task: PeriodicTask, runs: list[RunCell], registered: bool | None, last_run_at: datetime | None,
         now: datetime, timing: BeatTiming) -> ScheduleRow:
    schedule = schedule_of(task)
    upcoming = schedule_preview_of(task, last_run_at=last_run_at, now=now, timing=timing)
    if upcoming.error:
        state = upcoming.error
    elif not task.enabled:
        state = "disabled"
    elif task.expires is not None and task.expires <= now:
        state = "expired"
    elif upcoming.next is None:
        state = "no more runs"
    else:
        state = ""
    return ScheduleRow(
        schedule=schedule,
        text=upcoming.text if not upcoming.error else "",
        timezone=schedule_zone_name(schedule),
        next_fire=upcoming.next if not state else None,
        next_state=state,
        runs=tuple(runs),
        task_registered=registered,
    )


def schedule_rows(tasks: list[PeriodicTask], *, now: datetime | None = None) -> dict[int, ScheduleRow]:
    """Rows for the schedules shown on a list page, by primary key.

    Expects the schedule relations select_related; makes one query on the results and one cache
    read whatever the number of schedules, and asks the workers only about task names unknown here.
    """
    now = now or timezone.now()
    runs = schedule_runs([t.name for t in tasks])
    registered = task_registered({t.task for t in tasks})
    last_runs = beat_last_runs(tasks)
    timing = beat_timing()
    return {t.pk: _row(t, runs.get(t.name, []), registered.get(t.task), last_runs[t.pk], now, timing)
            for t in tasks}


def schedule_task(pk: int | str) -> PeriodicTask | None:
    """One schedule with its schedule relations, or None."""
    try:
        return PeriodicTask.objects.select_related(*SCHEDULE_RELATIONS).filter(pk=int(pk)).first()
    except (TypeError, ValueError):
        return None


def edit_last_run_at(task: PeriodicTask | None) -> datetime | None:
    """The last run beat will count a stored schedule from once an edit of it is saved.

    None for a new schedule, and for a disabled one: enabling it is a change beat counts from.
    """
    if task is None or not task.enabled:
        return None
    return beat_last_runs([task])[task.pk]


def schedule_last_run_at(pk: int | str | None) -> datetime | None:
    """edit_last_run_at of the schedule `pk` (the live preview names the schedule it edits)."""
    return edit_last_run_at(schedule_task(pk) if pk not in (None, "") else None)


def definition_fingerprint(definition: dict[str, Any] | None) -> str:
    """A short hash of a definition: the edit form sends back the one it was opened with."""
    text = json.dumps(definition or {}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# --- Versions ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VersionChange:
    field: str
    before: str
    after: str


@dataclass(frozen=True)
class VersionRow:
    """One kept version with its diff as text, and whether restoring it would change anything."""

    version: ScheduleVersion
    changes: tuple[VersionChange, ...]
    current: bool  # the schedule is as this version says (restoring it would change nothing)
    restorable: bool


def _value_text(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    return display_json(value)


def schedule_versions(*, task: PeriodicTask | None = None, name: str = "") -> QuerySet:
    """Versions, newest first: of one schedule (all its names), of a name, or of every schedule."""
    versions = ScheduleVersion.objects.select_related("restored_from").order_by("-created_at", "-id")
    if task is not None:
        return versions.filter(periodic_task=task)
    if name:
        return versions.filter(name=name)
    return versions


def version_rows(versions: list[ScheduleVersion]) -> list[VersionRow]:
    """The versions of a page with their diffs, each compared with its schedule as it is now.

    Two queries whatever the number of versions: the live schedules they belong to (by link,
    or by name once deleted), with their schedule relations.
    """
    ids = {v.periodic_task_id for v in versions if v.periodic_task_id}
    names = {v.name for v in versions if not v.periodic_task_id}
    live = list(PeriodicTask.objects.select_related(*SCHEDULE_RELATIONS)
                .filter(Q(pk__in=ids) | Q(name__in=names)))
    now_by_id = {t.pk: definition_of(t) for t in live}
    now_by_name = {t.name: now_by_id[t.pk] for t in live}
    rows = []
    for version in versions:
        now = (now_by_id.get(version.periodic_task_id) if version.periodic_task_id
               else now_by_name.get(version.name))
        current = bool(version.definition) and version.definition == now
        rows.append(VersionRow(
            version=version,
            changes=tuple(VersionChange(c.get("field", ""), _value_text(c.get("before")),
                                        _value_text(c.get("after"))) for c in version.changes or []),
            current=current,
            restorable=bool(version.definition) and not current,
        ))
    return rows
