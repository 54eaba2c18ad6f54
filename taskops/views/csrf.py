"""The CSRF failure page (CSRF_FAILURE_VIEW): Django's own, after the refused POST's audit entry."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.views import csrf

from taskops.services.access import csrf_failure_record


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    csrf_failure_record(request=request, reason=reason)
    return csrf.csrf_failure(request, reason=reason)
