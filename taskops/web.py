"""What views, middleware and template tags share about a web request and the console's page addresses."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponseNotAllowed
from django.urls import NoReverseMatch, reverse

# The periodic task admin (taskops.admin.schedules) names its extra pages "taskops_schedule_<suffix>".
SCHEDULE_URL_PREFIX = "admin:taskops_schedule_"


def is_live(request: HttpRequest) -> bool:
    """A background refresh by the page's poller (it gets the page without consuming messages)."""
    return request.headers.get("X-TaskOps-Live") == "1"


def transfer_url(suffix: str) -> str:
    """The URL of a schedule import / export page ("export", "import", ...), or "" when none is hooked in."""
    try:
        return reverse(SCHEDULE_URL_PREFIX + suffix)
    except NoReverseMatch:
        return ""


def schedule_list_url() -> str:
    """The schedule list (the periodic tasks admin), where an import ends."""
    try:
        return reverse("admin:django_celery_beat_periodictask_changelist")
    except NoReverseMatch:
        return reverse("admin:index")


def post_only() -> HttpResponseNotAllowed:
    """The answer to a GET on an action's address (405): a sentence, not a browser's error page."""
    return HttpResponseNotAllowed(
        ["POST"], content="This address carries out an action: use the button on the console's page "
                          "(a form sent with POST). Opening it changes nothing.\n",
        content_type="text/plain; charset=utf-8")
