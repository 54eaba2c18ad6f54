"""The console's admin pages: one module per area, registered on the default admin site."""

from taskops.admin import approvals, audit, live, runs  # noqa: F401
