"""The dashboard shown on the admin index: cluster reading, failures and beat, per permission."""

from __future__ import annotations

from django.http import HttpRequest

from taskops import selectors
from taskops.permissions import can
from taskops.selectors.beat_health import beat_health_shared


def dashboard_context(request: HttpRequest) -> dict:
    """What the dashboard fragment shows this user (sections they may not see are left out)."""
    user = request.user
    context: dict = {"show_dashboard": can(user, "dashboard.view")}
    if not context["show_dashboard"]:
        return context
    context["reading"] = selectors.cluster_reading()
    context["beat"] = beat_health_shared()
    context["can_see_workers"] = can(user, "worker.view")
    if can(user, "run.view"):
        context["failures"] = selectors.failure_recent()
    return context
