"""Reads of the dashboard on the admin index: cluster reading, failures and beat, as this user may see them."""

from __future__ import annotations

from django.contrib.auth.models import AnonymousUser, User

from taskops.permissions import can
from taskops.selectors.beat_health import beat_health_shared
from taskops.selectors.live import cluster_reading, failure_recent


def dashboard_context(user: User | AnonymousUser) -> dict:
    """What the dashboard fragment shows `user` (sections they may not see are left out)."""
    context: dict = {"show_dashboard": can(user, "dashboard.view")}
    if not context["show_dashboard"]:
        return context
    context["reading"] = cluster_reading()
    context["beat"] = beat_health_shared()
    context["can_see_workers"] = can(user, "worker.view")
    if can(user, "run.view"):
        context["failures"] = failure_recent()
    return context
