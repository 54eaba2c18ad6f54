"""On PostgreSQL a web request's slow statement is stopped after TASKOPS_DB_STATEMENT_TIMEOUT_MS and the page says so; nothing else gets the limit."""

from __future__ import annotations

import pytest
from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.test import override_settings
from django.urls import include, path

pytestmark = pytest.mark.db_engine  # PostgreSQL's statement_timeout: the PostgreSQL pass runs it

needs_postgres = pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="statement_timeout is PostgreSQL's: run with DATABASE_URL=postgres://… (make test's "
           "PostgreSQL pass does)")


def _show_timeout() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        return cursor.fetchone()[0]


def sleepy(request: HttpRequest) -> HttpResponse:
    """A deliberately slow statement: one second of pg_sleep."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_sleep(1)")
    return HttpResponse("slept")


def show(request: HttpRequest) -> HttpResponse:
    return HttpResponse(_show_timeout())


urlpatterns = [path("sleepy/", sleepy), path("show/", show), path("", include("console.urls"))]


@needs_postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.urls(__name__)
@override_settings(TASKOPS_DB_STATEMENT_TIMEOUT_MS=200)
def test_a_slow_statement_ends_in_a_clear_page_not_a_500(role_client):
    client = role_client("Support")

    response = client.get("/sleepy/")

    assert response.status_code == 503
    page = response.content.decode()
    assert "The database stopped this page's query after 0.2 seconds" in page
    assert "Narrow the list with its filters" in page
    # The connection serves the next request as usual.
    assert client.get("/show/").content.decode() == "200ms"


@needs_postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.urls(__name__)
@override_settings(TASKOPS_DB_STATEMENT_TIMEOUT_MS=200)
def test_the_limit_holds_for_the_request_only(client):
    before = _show_timeout()

    assert client.get("/show/").content.decode() == "200ms"

    # Code outside a web request (workers, beat, management commands) keeps the server's value.
    assert _show_timeout() == before


@needs_postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.urls(__name__)
@override_settings(TASKOPS_DB_STATEMENT_TIMEOUT_MS=0)
def test_zero_turns_the_limit_off(client):
    assert client.get("/sleepy/").content == b"slept"


def test_web_requests_are_limited_by_default():
    from taskops.conf import config

    assert config.db_statement_timeout_ms == 5000
