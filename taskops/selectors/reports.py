"""Reads of report runs: which tasks are reports (TASKOPS_REPORTS), their runs, who triggered them, trends."""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from fnmatch import fnmatchcase
from pathlib import Path

from celery import states
from django.conf import settings
from django.core.paginator import Page
from django.db.models import Q, QuerySet
from django.db.models.functions import Substr
from django.utils import timezone
from django.utils.text import slugify
from django_celery_beat.models import PeriodicTask
from django_celery_results.models import TaskResult

from taskops.charts import DayPoint
from taskops.conf import celery_app, config
from taskops.models import AuditEntry, RunRetry
from taskops.paginators import CappedCountPaginator

WINDOW_DAYS = 30
# Statistics read at most this many runs per report and window (the newest), never a full count.
STATS_MAX_ROWS = 50_000
PAGE_SIZE = 50
# Only the start of a result is read: a report's result is the path of its output file.
RESULT_HEAD = 2048
WILDCARDS = frozenset("*?[")
ENDED = frozenset(states.READY_STATES)  # SUCCESS, FAILURE, REVOKED
_ROW_FIELDS = ("task_id", "task_name", "status", "periodic_task_name", "date_created",
               "date_started", "date_done", "result_head")


# --- Definitions --------------------------------------------------------------------------------
@dataclass(frozen=True)
class ReportDefinition:
    """One report: its title, the slug of its page, and the task names or patterns that are it."""

    slug: str
    title: str
    patterns: tuple[str, ...]

    @property
    def task_names(self) -> tuple[str, ...]:
        """Exact names as given; patterns matched against the tasks the console's Celery app knows."""
        exact = {p for p in self.patterns if not WILDCARDS & set(p)}
        wild = [p for p in self.patterns if WILDCARDS & set(p)]
        if wild:
            exact |= {name for name in celery_app().tasks
                      if any(fnmatchcase(name, pattern) for pattern in wild)}
        return tuple(sorted(exact))

    def runs(self) -> QuerySet:
        return TaskResult.objects.filter(task_name__in=self.task_names)


@dataclass(frozen=True)
class ReportSettings:
    definitions: tuple[ReportDefinition, ...]
    problems: tuple[str, ...] = ()

    def get(self, slug: str) -> ReportDefinition | None:
        return next((d for d in self.definitions if d.slug == slug), None)


def report_definitions() -> ReportSettings:
    """TASKOPS_REPORTS read into definitions; malformed entries are left out and named in `problems`."""
    raw = config.reports
    if not isinstance(raw, dict):
        return ReportSettings((), ("TASKOPS_REPORTS must map report titles to task names or "
                                   "patterns; it is ignored.",))
    definitions: list[ReportDefinition] = []
    problems: list[str] = []
    slugs: set[str] = set()
    for title, spec in raw.items():
        patterns = (spec,) if isinstance(spec, str) else spec
        if (not isinstance(title, str) or not title.strip()
                or not isinstance(patterns, (list, tuple)) or not patterns
                or not all(isinstance(p, str) and p.strip() for p in patterns)):
            problems.append(f"TASKOPS_REPORTS entry {title!r} is ignored: give it a title and a task "
                            "name, an fnmatch pattern, or a list of them.")
            continue
        base = slugify(title) or "report"
        slug, number = base, 1
        while slug in slugs:
            number += 1
            slug = f"{base}-{number}"
        slugs.add(slug)
        definitions.append(ReportDefinition(slug=slug, title=title.strip(),
                                            patterns=tuple(p.strip() for p in patterns)))
    return ReportSettings(tuple(definitions), tuple(problems))


def report_for_task(task_name: str | None) -> ReportDefinition | None:
    """The first report whose tasks include `task_name`."""
    if not task_name:
        return None
    return next((d for d in report_definitions().definitions if task_name in d.task_names), None)


# --- Output files -------------------------------------------------------------------------------
def reports_dir() -> Path:
    """Where report outputs live; only files inside it are ever served."""
    return Path(settings.MEDIA_ROOT) / "reports"


def output_path(result_text: str | None) -> Path | None:
    """The file a run's stored result names, resolved (symlinks too), if it is inside reports_dir().

    A report task returns its output's path (absolute, or relative to the reports directory);
    anything else, a path that leaves the directory, or a file that is gone gives None.
    """
    if not result_text:
        return None
    try:
        value = json.loads(result_text)
    except ValueError:
        return None
    if not isinstance(value, str) or not value.strip() or "\x00" in value:
        return None
    try:
        root = reports_dir().resolve()
        candidate = Path(value) if Path(value).is_absolute() else root / value
        resolved = candidate.resolve(strict=True)
        inside = resolved != root and resolved.is_relative_to(root) and resolved.is_file()
    except (OSError, RuntimeError, ValueError):
        return None
    return resolved if inside else None


@dataclass(frozen=True)
class ReportOutput:
    report: ReportDefinition
    task_id: str
    path: Path


def report_output(task_id: str) -> ReportOutput | None:
    """The output file of one report run, or None (no such run, not a report, no file inside)."""
    if "\x00" in task_id:  # PostgreSQL refuses NUL in text: no run has such an id
        return None
    row = (TaskResult.objects.filter(task_id=task_id)
           .annotate(result_head=Substr("result", 1, RESULT_HEAD))
           .values("task_name", "result_head").first())
    report = report_for_task(row["task_name"]) if row else None
    path = output_path(row["result_head"]) if report else None
    return ReportOutput(report=report, task_id=task_id, path=path) if path else None


# --- Runs ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Trigger:
    """Who or what started a run: a schedule, a console user, a console retry, or nobody we know."""

    kind: str  # "schedule", "user", "retry" or "unknown"
    text: str
    schedule_id: int | None = None
    original_task_id: str = ""


UNKNOWN = Trigger("unknown", "unknown / external")


@dataclass(frozen=True)
class ReportRun:
    task_id: str
    task_name: str
    state: str
    created: datetime | None
    started: datetime | None
    finished: datetime | None  # only for ended runs
    duration_seconds: float | None
    trigger: Trigger
    output_name: str  # the output file's name when it can be served, else ""


@dataclass(frozen=True)
class RunFilters:
    """The run list's filters: a state, and a range of days (inclusive) of the runs' last update."""

    state: str = ""
    since: date | None = None
    until: date | None = None

    def params(self) -> dict[str, str]:
        values = {"state": self.state, "since": self.since.isoformat() if self.since else "",
                  "until": self.until.isoformat() if self.until else ""}
        return {key: value for key, value in values.items() if value}


def _day_start(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def window_start(now: datetime | None = None, *, days: int = WINDOW_DAYS) -> datetime:
    """Midnight (in the console's time zone) at the start of the last `days` days, today included."""
    return _day_start(timezone.localdate(now) - timedelta(days=days - 1))


def _duration(started: datetime | None, done: datetime | None) -> float | None:
    if started is None or done is None or done < started:
        return None
    return (done - started).total_seconds()


def _filtered(report: ReportDefinition, filters: RunFilters) -> QuerySet:
    queryset = report.runs()
    if filters.state:
        queryset = queryset.filter(status=filters.state)
    if filters.since:
        queryset = queryset.filter(date_done__gte=_day_start(filters.since))
    if filters.until:
        queryset = queryset.filter(date_done__lt=_day_start(filters.until + timedelta(days=1)))
    # The (task_name, date_done DESC, id DESC) index serves this order.
    return (queryset.order_by("-date_done", "-id")
            .annotate(result_head=Substr("result", 1, RESULT_HEAD)).values(*_ROW_FIELDS))


def _triggers(rows: list[dict], report: ReportDefinition) -> dict[str, Trigger]:
    """Console retries and catalog sends among `rows` (two queries, whatever the number of rows)."""
    ids = [row["task_id"] for row in rows]
    if not ids:
        return {}
    found: dict[str, Trigger] = {}
    created = [row["date_created"] for row in rows if row["date_created"]]
    # Catalog sends name the task; a schedule's "run now" names the schedule.
    sends = AuditEntry.objects.filter(
        Q(action="task.trigger", target__in=report.task_names) | Q(action="schedule.run"),
        outcome=AuditEntry.Outcome.OK, detail__task_id__in=ids)
    if created:  # the audit entry is written after the run's first row: bound the search
        sends = sends.filter(created_at__gte=min(created) - timedelta(minutes=5))
    for task_id, action, target, actor_name in sends.values_list("detail__task_id", "action",
                                                                  "target", "actor_name"):
        text = (f"run now by {actor_name} (schedule {target})" if action == "schedule.run"
                else f"sent by {actor_name}")
        found[task_id] = Trigger("user", text)
    retries = RunRetry.objects.filter(retry_task_id__in=ids).values_list(
        "retry_task_id", "original_task_id", "requested_by__username", "job_id")
    for task_id, original, username, job_id in retries:
        by = username or "system"
        text = f"retry by {by}" + (f" (bulk job {job_id})" if job_id else "")
        found[task_id] = Trigger("retry", text, original_task_id=original)
    return found


def _schedule_ids(rows: list[dict]) -> dict[str, int]:
    names = {row["periodic_task_name"] for row in rows if row["periodic_task_name"]}
    if not names:
        return {}
    return dict(PeriodicTask.objects.filter(name__in=names).values_list("name", "id"))


def _report_runs(rows: list[dict], report: ReportDefinition) -> list[ReportRun]:
    triggers = _triggers(rows, report)
    schedules = _schedule_ids(rows)
    runs = []
    for row in rows:
        trigger = triggers.get(row["task_id"])
        if trigger is None and row["periodic_task_name"]:
            name = row["periodic_task_name"]
            trigger = Trigger("schedule", f"schedule {name}", schedule_id=schedules.get(name))
        ended = row["status"] in ENDED
        output = output_path(row["result_head"]) if row["status"] == states.SUCCESS else None
        runs.append(ReportRun(
            task_id=row["task_id"], task_name=row["task_name"] or "", state=row["status"],
            created=row["date_created"], started=row["date_started"],
            finished=row["date_done"] if ended else None,
            duration_seconds=_duration(row["date_started"], row["date_done"]) if ended else None,
            trigger=trigger or UNKNOWN, output_name=output.name if output else "",
        ))
    return runs


@dataclass(frozen=True)
class ReportRunPage:
    runs: tuple[ReportRun, ...]
    page: Page

    @property
    def capped(self) -> bool:
        return self.page.paginator.capped


def report_run_page(report: ReportDefinition, filters: RunFilters, page_number=1, *,
                    per_page: int = PAGE_SIZE) -> ReportRunPage:
    """One page of a report's runs, newest first: a capped count, the rows, two trigger lookups."""
    paginator = CappedCountPaginator(_filtered(report, filters), per_page)
    page = paginator.get_page(page_number)
    return ReportRunPage(runs=tuple(_report_runs(list(page.object_list), report)), page=page)


def report_run_count(report: ReportDefinition, filters: RunFilters, *, cap: int) -> int:
    """How many runs match, counted up to cap + 1 (so "more than cap" is known, never a full count)."""
    return _filtered(report, filters).values("pk")[: cap + 1].count()


def report_runs_all(report: ReportDefinition, filters: RunFilters, *, limit: int,
                    chunk: int = 500) -> Iterator[ReportRun]:
    """Every matching run (at most `limit`), newest first, read in chunks with their triggers."""
    rows: list[dict] = []
    for row in _filtered(report, filters)[:limit].iterator(chunk_size=chunk):
        rows.append(row)
        if len(rows) == chunk:
            yield from _report_runs(rows, report)
            rows = []
    yield from _report_runs(rows, report)


# --- Statistics ---------------------------------------------------------------------------------
def percentile(sorted_values: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile of already sorted values (None for none)."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


@dataclass(frozen=True)
class LastRun:
    task_id: str
    state: str
    at: datetime | None


@dataclass(frozen=True)
class ReportSummary:
    """A report over the last WINDOW_DAYS days: runs, success rate, durations, and one point per day."""

    report: ReportDefinition
    runs: int
    ended: int
    succeeded: int
    p50_seconds: float | None
    p95_seconds: float | None
    last: LastRun | None
    days: tuple[DayPoint, ...] = field(default_factory=tuple)
    capped: bool = False

    @property
    def success_percent(self) -> float | None:
        return 100 * self.succeeded / self.ended if self.ended else None


def report_summary(report: ReportDefinition, *, now: datetime | None = None) -> ReportSummary:
    """Runs of the last WINDOW_DAYS days (one query over the task/date index, at most STATS_MAX_ROWS)."""
    since = window_start(now)
    rows = list(report.runs().filter(date_done__gte=since).order_by("-date_done", "-id")
                .values_list("task_id", "status", "date_started", "date_done")[:STATS_MAX_ROWS + 1])
    capped = len(rows) > STATS_MAX_ROWS
    rows = rows[:STATS_MAX_ROWS]
    first_day = timezone.localdate(since)
    by_day: dict[date, tuple[list[float], list[bool]]] = {
        first_day + timedelta(days=n): ([], []) for n in range(WINDOW_DAYS)}
    durations: list[float] = []
    for _task_id, status, started, done in rows:
        if status not in ENDED or done is None:
            continue
        day = by_day.get(timezone.localdate(done))
        if day is None:  # a clock ahead of ours: not in these days
            continue
        durations_of_day, outcomes = day
        outcomes.append(status == states.SUCCESS)
        seconds = _duration(started, done)
        if seconds is not None:
            durations_of_day.append(seconds)
            durations.append(seconds)
    days = tuple(
        DayPoint(day=day, ended=len(outcomes), succeeded=sum(outcomes),
                 median_seconds=statistics.median(values) if values else None,
                 max_seconds=max(values) if values else None)
        for day, (values, outcomes) in sorted(by_day.items())
    )
    newest = rows[0] if rows else (report.runs().order_by("-date_done", "-id")
                                   .values_list("task_id", "status", "date_started", "date_done")
                                   .first())
    durations.sort()
    ended = sum(day.ended for day in days)
    return ReportSummary(
        report=report, runs=len(rows), ended=ended, succeeded=sum(day.succeeded for day in days),
        p50_seconds=percentile(durations, 0.50), p95_seconds=percentile(durations, 0.95),
        last=LastRun(newest[0], newest[1], newest[3]) if newest else None,
        days=days, capped=capped,
    )


def report_index() -> tuple[list[ReportSummary], tuple[str, ...]]:
    """Every report's summary (two queries at most per report), and the settings' problems."""
    config = report_definitions()
    return [report_summary(report) for report in config.definitions], config.problems
