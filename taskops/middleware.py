"""Refuses requests whose path or query string holds a NUL character (PostgreSQL cannot compare them)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponseBadRequest


class RejectNulMiddleware:
    """A NUL in a URL would reach a database query and fail there as a 500; answer 400 instead."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest):
        if "\x00" in request.path or "%00" in request.META.get("QUERY_STRING", ""):
            return HttpResponseBadRequest("The address contains a NUL character.",
                                          content_type="text/plain; charset=utf-8")
        return self.get_response(request)
