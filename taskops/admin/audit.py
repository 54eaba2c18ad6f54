"""The audit log in the admin: read-only, filterable, exportable (CSV, XLSX, JSON), newest first."""

import json

from django.contrib import admin
from django.core.serializers.json import DjangoJSONEncoder
from import_export import resources

from taskops.admin.pages import ConsoleExportMixin, ReadOnlyConsoleAdmin
from taskops.masking import value_mask
from taskops.models import AuditEntry
from taskops.permissions import can


class AuditEntryResource(resources.ModelResource):
    """The audit log's export columns (parameters and details masked, entries older than masking too)."""

    class Meta:
        model = AuditEntry
        fields = ("id", "created_at", "actor_name", "source_ip", "action", "target", "params",
                  "reason", "outcome", "message", "detail")
        export_order = fields

    def dehydrate_params(self, entry: AuditEntry):
        return value_mask(entry.params)

    def dehydrate_detail(self, entry: AuditEntry):
        return value_mask(entry.detail)


@admin.register(AuditEntry)
class AuditEntryAdmin(ConsoleExportMixin, ReadOnlyConsoleAdmin):
    view_action = "audit.view"
    list_display = ("created_at", "actor_name", "action", "target", "outcome", "short_message", "reason")
    list_filter = ("action", "outcome", "actor_name", "created_at")
    search_fields = ("=target", "actor_name", "reason")
    date_hierarchy = "created_at"
    show_full_result_count = False
    # Parameters and details as the console shows them (masked keys hidden), not as stored.
    fields = readonly_fields = [f"{f.name}_shown" if f.name in ("params", "detail") else f.name
                                for f in AuditEntry._meta.fields]
    resource_classes = [AuditEntryResource]

    def has_export_permission(self, request) -> bool:
        return can(request.user, "audit.export")

    @admin.display(description="params")
    def params_shown(self, entry: AuditEntry) -> str:
        return json.dumps(value_mask(entry.params), ensure_ascii=False, cls=DjangoJSONEncoder)

    @admin.display(description="detail")
    def detail_shown(self, entry: AuditEntry) -> str:
        return json.dumps(value_mask(entry.detail), ensure_ascii=False, cls=DjangoJSONEncoder)

    @admin.display(description="message")
    def short_message(self, entry: AuditEntry) -> str:
        return entry.message if len(entry.message) <= 120 else entry.message[:119] + "…"
