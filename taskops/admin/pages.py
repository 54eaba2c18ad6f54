"""Base admins of the console: read-only, access decided by can(); table-less pages add their URLs."""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import quote

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.options import IncorrectLookupParameters
from django.http import HttpResponseRedirect
from django.urls import path, register_converter, reverse
from django.utils.http import RFC3986_SUBDELIMS
from import_export.admin import ExportMixin

from taskops.permissions import can


class NameConverter:
    """A name a sender or worker chose (task id, queue, worker, task name) as one path segment.

    Any text goes: `/` and the escape character `~` are written `~2F` and `~7E`, and a name that
    is empty or only dots (which browsers would drop from a path) gets its dots written `~2E`
    (the empty name is `~`). Every other name is its own segment, so common URLs read as before.
    """

    regex = "[^/]+"
    _ESCAPED = re.compile(r"~([0-9A-F]{2})")

    def to_python(self, value: str) -> str:
        if value == "~":
            return ""
        if "~" in self._ESCAPED.sub("", value):
            raise ValueError("a ~ in a name segment starts ~XX")
        return self._ESCAPED.sub(lambda m: chr(int(m[1], 16)), value)

    def to_url(self, value: str) -> str:
        text = str(value).replace("~", "~7E").replace("/", "~2F")
        if not text.strip("."):
            return text.replace(".", "~2E") or "~"
        return text


register_converter(NameConverter, "taskops_name")  # routes: "<taskops_name:name>/"


def name_in_url(value: str) -> str:
    """`value` as reverse() writes it into a URL path (for links built from one reversed URL)."""
    return quote(NameConverter().to_url(value), safe=RFC3986_SUBDELIMS + "~:@")


class ReadOnlyConsoleAdmin(admin.ModelAdmin):
    """Nothing is added, changed or deleted through the admin's forms; `view_action` decides who sees it."""

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



class ConsolePageAdmin(ReadOnlyConsoleAdmin):
    """Hooks a table-less console page into the admin through its own URLs."""

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

class ConsoleExportMixin(ExportMixin):
    """django-import-export's export, with filters a visitor mangled answered by a message, not a 500."""

    def export_action(self, request):
        try:
            return super().export_action(request)
        except IncorrectLookupParameters:
            messages.error(request, "The filters in the address are not valid: nothing was exported.")
            opts = self.model._meta
            return HttpResponseRedirect(
                reverse(f"{self.admin_site.name}:{opts.app_label}_{opts.model_name}_changelist")
                + "?e=1"
            )


class ReasonActionForm(helpers.ActionForm):
    """A list's action bar with a reason (kept in the audit log; needed for big bulk actions)."""

    reason = forms.CharField(
        required=False, max_length=500, label="Reason:",
        widget=forms.TextInput(attrs={"placeholder": "why (kept in the audit log)", "size": 28}))
