"""Django's debug page and error emails without the credentials inside URLs (broker, database, cache), wherever they appear."""

from __future__ import annotations

import re
from pprint import pformat
from typing import Any

from django.views.debug import ExceptionReporter, SafeExceptionReporterFilter

SUBSTITUTE = SafeExceptionReporterFilter.cleansed_substitute
# scheme://userinfo@ — the userinfo ends at the authority's last "@" (an unencoded "@" in a
# password included) and never reaches into the path, the query or the next word.
_USERINFO = re.compile(r"(?P<scheme>\b[a-z][a-z0-9+.-]*://)(?P<userinfo>[^\s/?#'\"<>]*)@", re.I)


def _userinfo_masked(match: re.Match) -> str:
    user, colon, _ = match["userinfo"].partition(":")
    # "user:password" keeps the user; a lone userinfo may be a token: all of it goes.
    return f"{match['scheme']}{user}:{SUBSTITUTE}@" if colon else f"{match['scheme']}{SUBSTITUTE}@"


def url_credentials_masked(text: str) -> str:
    """`text` with the password (or token) of every URL in it replaced by Django's substitute."""
    return _USERINFO.sub(_userinfo_masked, text)


class _Shown:
    """A value the debug page shows by its cleansed text (pprint uses repr)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


def _cleansed(value: Any) -> Any:
    """A string with its URL credentials masked; any other value, if its text holds some, as that text masked."""
    if isinstance(value, str):  # lazy strings too (SimpleLazyObject): their text
        return url_credentials_masked(str(value))
    if value is None or isinstance(value, (bool, int, float)):
        return value
    try:
        text = pformat(value)
    except Exception:  # a broken __repr__: Django's page says so itself
        return value
    masked = url_credentials_masked(text)
    return value if masked == text else _Shown(masked)


class CredentialHidingExceptionReporterFilter(SafeExceptionReporterFilter):
    """Django's filter (settings named like secrets hidden) that also hides credentials inside URLs.

    Settings (DATABASE_URL, CELERY_BROKER_URL, TASKOPS_CACHE_URL, CACHES, nested values too),
    request.META (the environment under runserver), POST data and the frames' local variables.
    """

    def cleanse_setting(self, key, value):
        # Django recurses through dicts, lists and tuples by calling this for every item.
        cleansed = super().cleanse_setting(key, value)
        if isinstance(cleansed, (dict, list, tuple)):
            return cleansed
        return _cleansed(cleansed)

    def get_post_parameters(self, request):
        parameters = super().get_post_parameters(request)
        if not parameters:
            return parameters
        cleansed = parameters.copy()
        for key, values in cleansed.lists():
            cleansed.setlist(key, [_cleansed(v) for v in values])
        return cleansed

    def get_traceback_frame_variables(self, request, tb_frame):
        return [(name, _cleansed(value))
                for name, value in super().get_traceback_frame_variables(request, tb_frame)]


class CredentialHidingExceptionReporter(ExceptionReporter):
    """Django's reporter with URL credentials masked in what the filter does not see: exception messages."""

    def get_traceback_data(self) -> dict:
        data = super().get_traceback_data()
        for key in ("exception_value", "exception_notes"):
            if isinstance(data.get(key), str):
                data[key] = url_credentials_masked(data[key])
        for frame in data.get("frames", []):
            if frame.get("exc_cause") is not None:
                frame["exc_cause"] = url_credentials_masked(str(frame["exc_cause"]))
        return data
