"""Admin hook of the report pages: the reports, one report, its export and a run's output file."""

from django.contrib import admin

from taskops.admin.pages import ConsolePageAdmin
from taskops.models import Report
from taskops.views import reports


@admin.register(Report)
class ReportAdmin(ConsolePageAdmin):
    """"Reports" in the admin for everyone who may see them (report.view)."""

    view_action = "report.view"

    def page_urls(self):
        return [
            ("", reports.report_index, "changelist"),
            ("output/<taskops_name:task_id>/", reports.report_output, "output"),
            ("<slug:slug>/", reports.report_detail, "detail"),
            ("<slug:slug>/export/<str:fmt>/", reports.report_export, "export"),
        ]
