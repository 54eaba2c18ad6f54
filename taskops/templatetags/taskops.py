"""Template tags of the console: the dashboard fragment, sparklines, and small formatting helpers."""

from __future__ import annotations

from datetime import datetime
from datetime import timezone as dt_timezone

from django import template
from django.db import DatabaseError
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from taskops.conf import config
from taskops.db_timeout import recent_trouble
from taskops.models import PendingAction
from taskops.permissions import can, read_only
from taskops.selectors.dashboard import dashboard_context
from taskops.services.approvals import approval_permission
from taskops.web import is_live

register = template.Library()


@register.inclusion_tag("admin/taskops/_dashboard.html", takes_context=True)
def taskops_dashboard(context) -> dict:
    """The live dashboard for the admin index (renders nothing for users who may not see it)."""
    request = context["request"]
    return {"request": request, "live_request": is_live(request), **dashboard_context(request.user)}


@register.simple_tag
def sparkline(values, width: int = 120, height: int = 24) -> str:
    """An inline SVG line of `values` (oldest first), scaled to its own maximum."""
    points = list(values or ())
    if len(points) < 2:
        return format_html('<span class="taskops-quiet">{}</span>', "no history yet")
    top = max(points) or 1
    step = width / (len(points) - 1)
    coords = " ".join(
        f"{i * step:.1f},{height - 1 - (v / top) * (height - 2):.1f}" for i, v in enumerate(points)
    )
    return format_html(
        '<svg class="taskops-sparkline" width="{}" height="{}" viewBox="0 0 {} {}" role="img" '
        'aria-label="depth over time, last {}, peak {}"><polyline fill="none" points="{}"/></svg>',
        width, height, width, height, points[-1], top, coords,
    )


@register.filter
def priorities(by_priority: dict) -> str:
    """{0: 4, 9: 1} -> "p0: 4, p9: 1" (priority step: messages)."""
    return ", ".join(f"p{step}: {count}" for step, count in sorted((by_priority or {}).items()))


@register.filter
def seconds(value) -> str:
    """A duration in seconds as "2 h 5 min", "4 min 10 s" or "12 s"."""
    if value is None:
        return "—"
    total = int(value)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{secs} s"


@register.simple_tag(takes_context=True)
def taskops_safety_banner(context) -> str:
    """Read-only mode, a slow or locked database, and the approval requests this user may decide on, as a banner."""
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not user.is_active or not user.is_staff:
        return ""
    parts = []
    trouble = recent_trouble()
    if trouble:
        parts.append(format_html(
            '<li class="warning" data-database-trouble="{}">The database is slow or locked: {} '
            '(at {}). Pages may be slow and actions may fail until it is free.</li>',
            trouble.kind, trouble.words,
            timezone.localtime(datetime.fromtimestamp(trouble.at, tz=dt_timezone.utc)).strftime("%H:%M:%S"),
        ))
    if read_only():
        parts.append(format_html(
            '<li class="warning">{}</li>',
            "Read-only mode: the console shows everything and changes nothing (TASKOPS_READ_ONLY).",
        ))
    # Requests only exist while approvals are on: every other page load costs no query.
    if config.require_approval and can(user, "approval.view"):
        try:
            actions = list(
                PendingAction.objects.filter(state=PendingAction.State.PENDING,
                                             expires_at__gt=timezone.now())
                .exclude(requested_by=user).values_list("action", flat=True)
            )
        except DatabaseError:
            actions = []
        waiting = sum(1 for action in actions if can(user, approval_permission(action) or "-"))
        if waiting:
            url = reverse("admin:taskops_pendingaction_changelist") + "?state__exact=pending"
            parts.append(format_html(
                '<li class="info"><a href="{}" data-approvals-waiting="{}">{} request{} {} for your approval.</a></li>',
                url, waiting, waiting, "s" if waiting != 1 else "", "wait" if waiting != 1 else "waits",
            ))
    if not parts:
        return ""
    return format_html('<ul class="messagelist taskops-safety">{}</ul>', mark_safe("".join(parts)))
