"""Base admins of the console: read-only, access decided by can(), lists that read only their declared filters; table-less pages add their URLs."""

from __future__ import annotations

import functools

import re
from collections.abc import Callable, Iterable, Sequence
from urllib.parse import quote

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import FieldListFilter, SimpleListFilter, helpers
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.utils import get_fields_from_path
from django.contrib.admin.views.main import ERROR_FLAG, ChangeList
from django.db.models import Field, Model
from django.http import HttpRequest, HttpResponseRedirect
from django.urls import path, register_converter, reverse
from django.utils.http import RFC3986_SUBDELIMS
from import_export.admin import ExportMixin
from import_export.formats.base_formats import JSON

from taskops.conf import config
from taskops.permissions import can
from taskops.spreadsheets import InertCSV, InertXLSX


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


class ListParametersRefused(ValueError):
    """A list's address holds parameters the list does not read, or a search over the limit.

    Raised before any query runs; `names` are the parameters to drop.
    """

    def __init__(self, names: Sequence[str], message: str) -> None:
        super().__init__(message)
        self.names = tuple(names)


def declared_parameters(*, list_filter: Iterable, date_hierarchy: str | None,
                        model: type[Model], model_admin, request: HttpRequest) -> set[str]:
    """The query parameters a change list's filters and date hierarchy read, as the admin builds them.

    A SimpleListFilter reads its `parameter_name` (it is not built: its choices may cost queries);
    a field filter is built without values and asked for its `expected_parameters()`.
    """
    names: set[str] = set()
    for entry in list_filter:
        if isinstance(entry, type) and issubclass(entry, SimpleListFilter):
            names.add(entry.parameter_name)
            continue
        if callable(entry):  # another filter class: built without values
            names.update(entry(request, {}, model, model_admin).expected_parameters())
            continue
        field, filter_class = entry if isinstance(entry, (tuple, list)) else (entry, FieldListFilter.create)
        field_path = None if isinstance(field, Field) else field
        if field_path is not None:
            field = get_fields_from_path(model, field_path)[-1]
        names.update(filter_class(field, request, {}, model, model_admin,
                                  field_path=field_path).expected_parameters())
    if date_hierarchy:
        names.update(f"{date_hierarchy}__{part}" for part in ("year", "month", "day"))
    return names


def list_parameters_check(params: Iterable[str], search: str, *, declared: set[str]) -> None:
    """Raise ListParametersRefused for parameters outside `declared`, or a search over the limit."""
    limit = config.search_max_chars
    if len(search) > limit:
        raise ListParametersRefused(["q"], f"A search may be at most {limit:,} characters long "
                                           f"(this one has {len(search):,}): it was not run.")
    undeclared = sorted(set(params) - declared)
    if undeclared:
        shown = ", ".join(repr(n) for n in undeclared[:5]) + (" and more" if len(undeclared) > 5 else "")
        raise ListParametersRefused(undeclared, f"This list has no filter {shown}: "
                                                f"{'it was' if len(undeclared) == 1 else 'they were'} "
                                                "not applied. Use the filters beside the list.")


class DeclaredFiltersChangeList(ChangeList):
    """A change list that applies only its declared filters, the date hierarchy and the search.

    Any other parameter (a lookup such as `traceback__regex=` typed into the address) is
    refused before a query runs, as is a search longer than TASKOPS_SEARCH_MAX_CHARS. Ordering,
    paging and the admin's own flags are read as usual; `own_parameters` are those the list
    itself reads (keyset paging).
    """

    own_parameters: tuple[str, ...] = ()

    def get_filters_params(self, params=None):
        lookup_params = super().get_filters_params(params)
        for name in self.own_parameters:
            lookup_params.pop(name, None)
        return lookup_params

    def get_filters(self, request):
        list_parameters_check(self.get_filters_params(), self.query, declared=declared_parameters(
            list_filter=self.list_filter, date_hierarchy=self.date_hierarchy, model=self.model,
            model_admin=self.model_admin, request=request))
        return super().get_filters(request)


class DeclaredFiltersMixin:
    """A ModelAdmin whose list reads only its declared filters (DeclaredFiltersChangeList).

    Undeclared parameters are answered with a message and the list without them, never a query.
    """

    def get_changelist(self, request, **kwargs):
        return DeclaredFiltersChangeList

    def changelist_view(self, request, extra_context=None):
        try:
            return super().changelist_view(request, extra_context)
        except ListParametersRefused as refusal:
            messages.error(request, str(refusal))
            query = request.GET.copy()
            for name in (*refusal.names, ERROR_FLAG):
                query.pop(name, None)
            return HttpResponseRedirect(f"{request.path}?{query.urlencode()}" if query else request.path)


class ReadOnlyConsoleAdmin(DeclaredFiltersMixin, admin.ModelAdmin):
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



def site_view(admin_site, view: Callable) -> Callable:
    """`view` behind `admin_site`'s login wrapper, rendering with that site's context (not the global site)."""

    @functools.wraps(view)
    def with_site(request, *args, **kwargs):
        request.admin_site = admin_site
        return view(request, *args, **kwargs)

    return admin_site.admin_view(with_site)


class ConsolePageAdmin(ReadOnlyConsoleAdmin):
    """Hooks a table-less console page into the admin through its own URLs."""

    def page_urls(self) -> list[tuple[str, Callable, str]]:
        """(route, view, name suffix) for each page; the view takes the request and URL kwargs."""
        return []

    def get_urls(self):
        opts = self.model._meta
        prefix = f"{opts.app_label}_{opts.model_name}"
        return [
            path(route, site_view(self.admin_site, view), name=f"{prefix}_{suffix}")
            for route, view, suffix in self.page_urls()
        ]

class ConsoleExportMixin(ExportMixin):
    """django-import-export's export in CSV, XLSX (inert spreadsheet text) and JSON, with filters a
    visitor mangled answered by a message, not a 500."""

    formats = [InertCSV, InertXLSX, JSON]

    def export_action(self, request):
        try:
            return super().export_action(request)
        except (IncorrectLookupParameters, ListParametersRefused) as exc:
            messages.error(request, f"The filters in the address are not valid: nothing was exported ({exc}).")
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
