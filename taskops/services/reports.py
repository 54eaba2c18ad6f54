"""Export of a report's runs to CSV or XLSX (inert spreadsheet text), recorded in the audit log as a read of data."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import tablib
from django.utils import timezone

from taskops.models import AuditEntry
from taskops.selectors.reports import (
    ReportDefinition,
    ReportRun,
    RunFilters,
    report_run_count,
    report_runs_all,
)
from taskops.services.base import ActionOutcome, Actor, AuditedAction
from taskops.spreadsheets import InertCSV, InertXLSX

EXPORT_MAX_ROWS = 100_000
FORMATS = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


@dataclass(frozen=True)
class ExportFile:
    filename: str
    content_type: str
    content: bytes
    rows: int


def _local(moment: datetime | None) -> datetime | None:
    """Local wall-clock time without tz (spreadsheets have no time zones), whole seconds."""
    return timezone.localtime(moment).replace(tzinfo=None, microsecond=0) if moment else None


def _row(run: ReportRun) -> list:
    return [
        run.task_id, run.task_name, run.state, _local(run.started), _local(run.finished),
        round(run.duration_seconds, 3) if run.duration_seconds is not None else None,
        run.trigger.text, run.output_name,
    ]


def report_export(*, actor: Actor, report: ReportDefinition, filters: RunFilters, fmt: str) -> ExportFile:
    """The report's (filtered) runs as a CSV or XLSX file, newest first; audited as "report.export".

    More than EXPORT_MAX_ROWS matching runs is refused (narrow the dates) rather than cut short.
    """
    act = AuditedAction(actor, "report.export", report.title, {"format": fmt, **filters.params()})
    act.refuse_unless_allowed("report.export")
    if fmt not in FORMATS:
        act.refuse(f"No export format {fmt!r}.")
    if report_run_count(report, filters, cap=EXPORT_MAX_ROWS) > EXPORT_MAX_ROWS:
        act.refuse(f"More than {EXPORT_MAX_ROWS:,} runs match: narrow the dates to export them.")
    zone = timezone.get_current_timezone_name()
    dataset = tablib.Dataset(headers=[
        "run id", "task", "state", f"started ({zone})", f"finished ({zone})", "duration (s)",
        "triggered by", "output file",
    ], title=report.title[:31])
    for run in report_runs_all(report, filters, limit=EXPORT_MAX_ROWS):
        dataset.append(_row(run))
    if fmt == "csv":
        content = ("\ufeff" + InertCSV().export_data(dataset)).encode()  # the BOM: Excel reads UTF-8
    else:
        content = InertXLSX().export_data(dataset)
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
    result = ActionOutcome(AuditEntry.Outcome.OK,
                           f"Exported {dataset.height} runs of {report.title} as {fmt.upper()}.",
                           {"rows": dataset.height})
    act.finish(result)
    return ExportFile(filename=f"{report.slug}-runs-{stamp}.{fmt}", content_type=FORMATS[fmt],
                      content=content, rows=dataset.height)
