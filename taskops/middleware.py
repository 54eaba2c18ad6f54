"""Request guards: a NUL in the address is refused (PostgreSQL cannot compare it); a form past Django's size limits gets a page saying so."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.utils.http import url_has_allowed_host_and_scheme

from taskops.views.common import render_page


class RejectNulMiddleware:
    """A NUL in a URL would reach a database query and fail there as a 500; answer 400 instead."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest):
        if "\x00" in request.path or "%00" in request.META.get("QUERY_STRING", ""):
            return HttpResponseBadRequest("The address contains a NUL character.",
                                          content_type="text/plain; charset=utf-8")
        return self.get_response(request)


class FormTooLargeMiddleware:
    """A POST past DATA_UPLOAD_MAX_MEMORY_SIZE (or the field and file counts) gets a page that says
    so and that nothing was done (413), instead of Django's bare 400.

    The form is read here, just before CsrfViewMiddleware would read it (place this middleware
    right before it); views exempt from CSRF, which may read the raw body, are left alone.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest):
        return self.get_response(request)

    def process_view(self, request: HttpRequest, view_func, view_args, view_kwargs):
        if request.method != "POST" or getattr(view_func, "csrf_exempt", False):
            return None
        try:
            request.POST  # noqa: B018 - parsing is the check
        except (RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent) as exc:
            return form_too_large_page(request, exc)
        return None


def form_too_large_page(request: HttpRequest, exc: Exception) -> HttpResponse:
    """The page answering a form Django refused to read (413): which limit, and nothing was done."""
    if isinstance(exc, RequestDataTooBig):
        limit = f"{settings.DATA_UPLOAD_MAX_MEMORY_SIZE / 2**20:.1f} MB of form data"
    elif isinstance(exc, TooManyFieldsSent):
        limit = f"{settings.DATA_UPLOAD_MAX_NUMBER_FIELDS:,} fields"
    else:
        limit = f"{settings.DATA_UPLOAD_MAX_NUMBER_FILES:,} files"
    back = request.META.get("HTTP_REFERER", "")
    if not url_has_allowed_host_and_scheme(back, {request.get_host()}, request.is_secure()):
        back = ""
    response = render_page(request, "admin/taskops/form_too_large.html", "The form was too large",
                           {"limit": limit, "back": back})
    response.status_code = 413
    return response
