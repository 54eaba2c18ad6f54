"""The audit log in the admin: read-only, filterable, exportable (CSV, XLSX, JSON), newest first."""

from django.contrib import admin
from import_export import resources

from taskops.admin.pages import ConsoleExportMixin, ReadOnlyConsoleAdmin
from taskops.models import AuditEntry
from taskops.permissions import can


class AuditEntryResource(resources.ModelResource):
    """The audit log's export columns."""

    class Meta:
        model = AuditEntry
        fields = ("id", "created_at", "actor_name", "source_ip", "action", "target", "params",
                  "reason", "outcome", "message", "detail")
        export_order = fields


@admin.register(AuditEntry)
class AuditEntryAdmin(ConsoleExportMixin, ReadOnlyConsoleAdmin):
    view_action = "audit.view"
    list_display = ("created_at", "actor_name", "action", "target", "outcome", "short_message", "reason")
    list_filter = ("action", "outcome", "actor_name", "created_at")
    search_fields = ("=target", "actor_name", "reason")
    date_hierarchy = "created_at"
    show_full_result_count = False
    readonly_fields = [f.name for f in AuditEntry._meta.fields]
    resource_classes = [AuditEntryResource]

    def has_export_permission(self, request) -> bool:
        return can(request.user, "audit.export")

    @admin.display(description="message")
    def short_message(self, entry: AuditEntry) -> str:
        return entry.message if len(entry.message) <= 120 else entry.message[:119] + "…"
