"""Schedule import and export pages, hooked into the periodic tasks admin."""

from __future__ import annotations

from collections.abc import Callable


class ScheduleTransferAdminMixin:
    """Adds the import / export pages to the admin that includes it."""

    def transfer_urls(self) -> list[tuple[str, Callable, str]]:
        """(route, view, name suffix) of the import / export pages."""
        return []
