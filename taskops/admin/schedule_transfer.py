"""Schedule import and export pages, hooked into the periodic tasks admin."""

from __future__ import annotations

from collections.abc import Callable

from django.urls import NoReverseMatch, reverse

# The periodic task admin (taskops.admin.schedules) names these URLs "taskops_schedule_<suffix>".
URL_NAME_PREFIX = "admin:taskops_schedule_"


class ScheduleTransferAdminMixin:
    """Adds the import / export pages to the admin that includes it."""

    def transfer_urls(self) -> list[tuple[str, Callable, str]]:
        """(route, view, name suffix) of the import / export pages.

        Routes come before the admin's "<path:object_id>/" routes. The admin names them
        "taskops_schedule_<suffix>". Suffixes: "export" (GET,
        ?format=json|yaml|csv|xlsx, optional repeated ?name=), "import" (GET: the upload form; POST:
        the preview, a dry run), "import_confirm" (POST: the import).
        """
        from taskops.views import schedule_transfer as views

        return [
            ("export/", views.schedule_export, "export"),
            ("import/", views.schedule_import, "import"),
            ("import/confirm/", views.schedule_import_confirm, "import_confirm"),
        ]


def transfer_url(suffix: str) -> str:
    """The URL of an import / export page ("export", "import", ...), or "" when none is hooked in."""
    try:
        return reverse(URL_NAME_PREFIX + suffix)
    except NoReverseMatch:
        return ""


def schedule_list_url() -> str:
    """The schedule list (the periodic tasks admin), where an import ends."""
    try:
        return reverse("admin:django_celery_beat_periodictask_changelist")
    except NoReverseMatch:
        return reverse("admin:index")
