"""The audit log in the admin: read-only, filterable, newest first."""

from django.contrib import admin

from taskops.admin.pages import ReadOnlyConsoleAdmin
from taskops.models import AuditEntry


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyConsoleAdmin):
    view_action = "audit.view"
    list_display = ("created_at", "actor_name", "action", "target", "outcome", "short_message", "reason")
    list_filter = ("action", "outcome", "created_at")
    search_fields = ("=target", "actor_name", "reason")
    date_hierarchy = "created_at"
    show_full_result_count = False
    readonly_fields = [f.name for f in AuditEntry._meta.fields]

    @admin.display(description="message")
    def short_message(self, entry: AuditEntry) -> str:
        return entry.message if len(entry.message) <= 120 else entry.message[:119] + "…"

