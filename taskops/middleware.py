"""The console's middleware: NUL characters in addresses refused, a Content-Security-Policy on every page."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest

from taskops.conf import config


class RejectNulMiddleware:
    """A NUL in a URL would reach a database query and fail there as a 500; answer 400 instead."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest):
        if "\x00" in request.path or "%00" in request.META.get("QUERY_STRING", ""):
            return HttpResponseBadRequest("The address contains a NUL character.",
                                          content_type="text/plain; charset=utf-8")
        return self.get_response(request)


class ContentSecurityPolicyMiddleware:
    """Adds TASKOPS_CONTENT_SECURITY_POLICY to every response that has none of its own.

    Django's debug pages (DEBUG only) are left without it: they are built with inline styles
    and scripts, and a developer reading a traceback needs them to work.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if settings.DEBUG and response.status_code in (404, 500):
            return response
        if "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = config.content_security_policy
        return response
