"""Schedule import and export pages, hooked into the periodic tasks admin."""

from __future__ import annotations

from collections.abc import Callable

from taskops.views import schedule_transfer as views


class ScheduleTransferAdminMixin:
    """Adds the import / export pages to the admin that includes it."""

    def transfer_urls(self) -> list[tuple[str, Callable, str]]:
        """(route, view, name suffix) of the import / export pages.

        Routes come before the admin's "<path:object_id>/" routes. The admin names them
        "taskops_schedule_<suffix>". Suffixes: "export" (GET,
        ?format=json|yaml|csv|xlsx, optional repeated ?name=), "import" (GET: the upload form; POST:
        the preview, a dry run), "import_confirm" (POST: the import).
        """
        return [
            ("export/", views.schedule_export, "export"),
            ("import/", views.schedule_import, "import"),
            ("import/confirm/", views.schedule_import_confirm, "import_confirm"),
        ]
