"""Report pages for managers: the reports, one report's trend and runs, its export, a run's output file."""

from __future__ import annotations

import os
from datetime import date

from celery import states
from django import forms
from django.contrib import messages
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.http import urlencode

from taskops import charts
from taskops.selectors import reports as report_reads
from taskops.services import ActionRefused, Actor
from taskops.services.reports import report_export as export_runs
from taskops.views.common import render_page, require

# Content types for report outputs; anything else is served as bytes to save.
OUTPUT_TYPES = {
    ".csv": "text/csv",
    ".txt": "text/plain",
    ".json": "application/json",
    ".pdf": "application/pdf",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".zip": "application/zip",
}
EARLIEST, LATEST = date(1970, 1, 1), date(2999, 12, 31)


class RunFilterForm(forms.Form):
    """The run list's filters: state and a range of days, both ends included."""

    state = forms.ChoiceField(required=False, choices=[("", "any state")]
                              + [(s, s) for s in sorted(states.ALL_STATES)])
    since = forms.DateField(required=False, label="From",
                            widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, label="To",
                            widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self):
        data = super().clean()
        for name in ("since", "until"):
            day = data.get(name)
            if day and not EARLIEST <= day <= LATEST:
                self.add_error(name, f"Give a day between {EARLIEST} and {LATEST}.")
        if data.get("since") and data.get("until") and data["since"] > data["until"]:
            self.add_error("until", "The range ends before it starts.")
        return data

    def filters(self) -> report_reads.RunFilters:
        """The valid filters (a field with an error is left out; the page shows the error)."""
        self.is_valid()
        data = self.cleaned_data
        return report_reads.RunFilters(state=data.get("state") or "", since=data.get("since"),
                                       until=data.get("until"))


def _report(slug: str) -> report_reads.ReportDefinition:
    report = report_reads.report_definitions().get(slug)
    if report is None:
        raise Http404(f"No report {slug!r} in TASKOPS_REPORTS.")
    return report


def report_url(slug: str) -> str:
    return reverse("admin:taskops_report_detail", args=[slug])


def report_index(request: HttpRequest) -> HttpResponse:
    require(request, "report.view")
    summaries, problems = report_reads.report_index()
    return render_page(request, "admin/taskops/report_index.html", "Reports", {
        "summaries": summaries, "problems": problems, "window_days": report_reads.WINDOW_DAYS,
    })


def report_detail(request: HttpRequest, slug: str) -> HttpResponse:
    require(request, "report.view")
    report = _report(slug)
    form = RunFilterForm(request.GET)
    filters = form.filters()
    summary = report_reads.report_summary(report)
    query = urlencode(filters.params())
    return render_page(request, "admin/taskops/report_detail.html", report.title, {
        "report": report,
        "several_tasks": len(report.task_names) > 1,
        "summary": summary,
        "chart": charts.duration_trend_svg(
            summary.days, chart_id=f"trend-{report.slug}",
            title=f"{report.title}: daily duration and success rate, last "
                  f"{report_reads.WINDOW_DAYS} days"),
        "form": form,
        "listing": report_reads.report_run_page(report, filters, request.GET.get("p") or 1),
        "export_query": f"?{query}" if query else "",
        "window_days": report_reads.WINDOW_DAYS,
    })


def report_export(request: HttpRequest, slug: str, fmt: str) -> HttpResponse:
    """GET: download the report's (filtered) runs; a refusal goes back to the page with the reason."""
    require(request, "report.export")
    report = _report(slug)
    form = RunFilterForm(request.GET)
    back = report_url(slug)
    if not form.is_valid():
        messages.error(request, "Nothing was exported: correct the filters first.")
        return HttpResponseRedirect(back)
    try:
        export = export_runs(actor=Actor.from_request(request), report=report,
                             filters=form.filters(), fmt=fmt)
    except ActionRefused as refusal:
        messages.error(request, f"Nothing was exported: {refusal}")
        return HttpResponseRedirect(f"{back}?{request.GET.urlencode()}" if request.GET else back)
    response = HttpResponse(export.content, content_type=export.content_type)
    response["Content-Disposition"] = f'attachment; filename="{export.filename}"'
    return response


def report_output(request: HttpRequest, task_id: str) -> FileResponse:
    """The output file of a report run, as a download, only from inside the reports directory."""
    require(request, "report.view")
    output = report_reads.report_output(task_id)
    if output is None:
        raise Http404("This run has no output file in the reports directory.")
    try:
        # The path was resolved: a symlink put in its place since then is refused, not followed.
        handle = os.fdopen(os.open(output.path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)), "rb")
    except OSError as exc:
        raise Http404("The output file cannot be read.") from exc
    return FileResponse(handle, as_attachment=True, filename=output.path.name,
                        content_type=OUTPUT_TYPES.get(output.path.suffix.lower(),
                                                      "application/octet-stream"))
