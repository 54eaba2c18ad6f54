"""Django's debug page and error emails show the broker, database and cache URLs without their passwords."""

from __future__ import annotations

import sys

import pytest
from django.core import mail
from django.http import HttpRequest, HttpResponse
from django.test import Client, RequestFactory, override_settings
from django.urls import path
from django.views.debug import get_exception_reporter_class

from taskops.error_reports import url_credentials_masked


def secret(name: str) -> str:
    """A password never written out in this file: the debug page's source excerpts cannot show it."""
    return f"{name}-pass-{len(name) * 7}"


PLACES = ("db", "broker", "cache", "nested", "meta", "local", "message", "post", "cause")
URLS = {
    "DATABASE_URL": f"postgres://taskops:{secret('db')}@db.internal:5432/taskops",
    "CELERY_BROKER_URL": f"redis://:{secret('broker')}@redis.internal:6379/0",
    "TASKOPS_CACHE_URL": f"redis://:{secret('cache')}@redis.internal:6379/1",
    "TASKOPS_SOMETHING_NESTED": {"servers": [(f"amqp://ops:{secret('nested')}@rabbit:5672//",)]},
}


def boom(request: HttpRequest) -> HttpResponse:
    connection_url = f"redis://:{secret('local')}@redis.internal:6379/0"  # a frame's local variable
    try:
        raise OSError(f"refused by amqp://guest:{secret('cause')}@rabbit.internal:5672//")
    except OSError as exc:
        raise ConnectionError(f"cannot reach amqp://guest:{secret('message')}@rabbit.internal:5672// "
                              f"(tried {connection_url.split('@')[-1]})") from exc


urlpatterns = [path("boom/", boom)]


def _assert_no_password(text: str) -> None:
    assert [place for place in PLACES if secret(place) in text] == []


# runserver puts the whole environment into request.META.
META = {"HTTP_X_BROKER": f"redis://:{secret('meta')}@redis.internal:6379/0"}


@pytest.mark.urls(__name__)
@override_settings(DEBUG=True, **URLS)
def test_the_technical_500_page_shows_no_url_password():
    response = Client(raise_request_exception=False).post(
        "/boom/", {"broker": f"amqp://u:{secret('post')}@rabbit//"}, **META)

    assert response.status_code == 500
    page = response.content.decode()
    assert "ConnectionError" in page and "redis.internal:6379" in page  # still a useful page
    assert "postgres://taskops:********************@db.internal:5432/taskops" in page
    _assert_no_password(page)


@override_settings(DEBUG=True, **URLS)
def test_the_error_email_text_shows_no_url_password():
    request = RequestFactory().post("/boom/", {"broker": f"amqp://u:{secret('post')}@rabbit//"}, **META)
    try:
        boom(request)
    except ConnectionError:
        exc_info = sys.exc_info()

    reporter = get_exception_reporter_class(request)(request, *exc_info, is_email=True)
    for text in (reporter.get_traceback_text(), reporter.get_traceback_html()):
        assert "ConnectionError" in text and "rabbit.internal:5672" in text
        _assert_no_password(text)


@pytest.mark.urls(__name__)
@override_settings(DEBUG=False, ADMINS=[("ops", "ops@example.com")], **URLS)
def test_the_email_sent_to_admins_shows_no_url_password():
    Client(raise_request_exception=False).get("/boom/", **META)

    assert len(mail.outbox) == 1
    _assert_no_password(mail.outbox[0].subject + mail.outbox[0].body)


@pytest.mark.parametrize(("text", "expected"), [
    ("redis://:secret@host:6379/0", "redis://:********************@host:6379/0"),
    ("postgres://user:p@ss@db/name", "postgres://user:********************@db/name"),
    ("https://token@api.example.com/x", "https://********************@api.example.com/x"),
    ("http://example.com/a?mail=me@example.com", "http://example.com/a?mail=me@example.com"),
    ("see amqp://u:pw@rabbit// and mail me@example.com",
     "see amqp://u:********************@rabbit// and mail me@example.com"),
    ("no url here", "no url here"),
])
def test_url_credentials_masked(text, expected):
    assert url_credentials_masked(text) == expected
