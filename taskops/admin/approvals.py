"""Pending approvals in the admin: dangerous actions waiting for a second person."""

from __future__ import annotations

import functools

from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.urls import path

from taskops.admin.pages import ReadOnlyConsoleAdmin, site_view
from taskops.models import PendingAction
from taskops.permissions import can
from taskops.services.approvals import approval_permission
from taskops.views import approvals as approval_views


@admin.register(PendingAction)
class PendingActionAdmin(ReadOnlyConsoleAdmin):
    view_action = "approval.view"
    list_display = ("requested_at", "action", "target", "requested_by_name", "reason", "state_now",
                    "expires_at", "decided_by_name", "outcome")
    list_filter = ("state", "action")
    search_fields = ("=target", "requested_by_name", "reason")
    show_full_result_count = False
    # What the approver reads, in that order (the user links repeat the names kept beside them).
    fields = readonly_fields = [
        "action", "target", "reason", "requested_by_name", "requested_at", "expires_at", "state_now",
        "decided_by_name", "decided_at", "outcome", "message", "params",
    ]
    change_form_template = "admin/taskops/pending_action.html"

    @admin.display(description="state", ordering="state")
    def state_now(self, pending: PendingAction) -> str:
        return PendingAction.State(pending.state_now).label

    def change_view(self, request, object_id, form_url="", extra_context=None):
        pending = self.get_object(request, unquote(object_id))  # None for an id that is no number
        context = dict(extra_context or {})
        if pending is not None:
            permission = approval_permission(pending.action) or "-"
            mine = pending.requested_by_id == request.user.pk
            is_open = pending.state_now == PendingAction.State.PENDING
            context.update(
                pending=pending,
                may_decide=is_open and not mine and can(request.user, permission),
                may_cancel=is_open and mine,
            )
        return super().change_view(request, object_id, form_url, context)

    def get_urls(self):
        wrap = functools.partial(site_view, self.admin_site)
        return [
            path("<int:pk>/decide/", wrap(approval_views.approval_decide),
                 name="taskops_pendingaction_decide"),
            path("<int:pk>/cancel/", wrap(approval_views.approval_cancel),
                 name="taskops_pendingaction_cancel"),
            *super().get_urls(),
        ]
