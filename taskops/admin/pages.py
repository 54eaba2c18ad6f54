"""Base admin for table-less pages: only custom URLs, permission from can(), no add/change/delete."""

from __future__ import annotations

from collections.abc import Callable

from django.contrib import admin
from django.urls import path

from taskops.permissions import can


class ConsolePageAdmin(admin.ModelAdmin):
    """Hooks a console page into the admin; `view_action` decides who sees it in the index."""

    view_action = ""

    def has_view_permission(self, request, obj=None) -> bool:
        return can(request.user, self.view_action)

    def has_module_permission(self, request) -> bool:
        return can(request.user, self.view_action)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def page_urls(self) -> list[tuple[str, Callable, str]]:
        """(route, view, name suffix) for each page; the view takes the request and URL kwargs."""
        return []

    def get_urls(self):
        opts = self.model._meta
        prefix = f"{opts.app_label}_{opts.model_name}"
        return [
            path(route, self.admin_site.admin_view(view), name=f"{prefix}_{suffix}")
            for route, view, suffix in self.page_urls()
        ]
