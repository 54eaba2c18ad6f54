"""A locked or slow database: web requests wait TASKOPS_DB_LOCK_TIMEOUT_MS at most, say so instead of a 500, and pages show a banner."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.test import override_settings
from django.urls import include, path, reverse

pytestmark = [
    pytest.mark.db_engine,  # SQLite's busy timeout, PostgreSQL's lock_timeout: both passes run it
    pytest.mark.django_db(transaction=True),  # another connection holds the lock
]

BANNER = "The database is slow or locked"
LOCK_MS = 500


@contextmanager
def locked(table: str) -> Iterator[None]:
    """Another process holds a lock: SQLite's write lock (the whole file), PostgreSQL's on `table`."""
    settings = connection.settings_dict
    if connection.vendor == "sqlite":
        other = sqlite3.connect(settings["NAME"], isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
    else:
        import psycopg

        other = psycopg.connect(host=settings["HOST"] or "127.0.0.1", port=settings["PORT"] or 5432,
                                user=settings["USER"], password=settings["PASSWORD"] or None,
                                dbname=settings["NAME"])
        other.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
    try:
        yield
    finally:
        other.rollback()
        other.close()


def _busy_timeout(request: HttpRequest) -> HttpResponse:
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("PRAGMA busy_timeout")
        else:
            cursor.execute("SHOW lock_timeout")
        return HttpResponse(str(cursor.fetchone()[0]))


def _slow(request: HttpRequest) -> HttpResponse:
    """A statement that takes 1.2 s (the banner's threshold is 1 s)."""
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            connection.connection.create_function("taskops_test_sleep", 1, time.sleep)
            cursor.execute("SELECT taskops_test_sleep(1.2)")
        else:
            cursor.execute("SELECT pg_sleep(1.2)")
    return HttpResponse("slept")


urlpatterns = [path("busy-timeout/", _busy_timeout), path("slow/", _slow),
               path("", include("console.urls"))]


@override_settings(TASKOPS_DB_LOCK_TIMEOUT_MS=LOCK_MS)
def test_an_action_on_a_locked_database_says_so_in_time_and_pages_show_a_banner(role_client, fake_cluster):
    client = role_client("Operations")

    with locked("taskops_auditentry"):
        began = time.monotonic()
        response = client.post(reverse("admin:taskops_queue_pause", args=["default"]),
                               {"reason": "deploy"})
        elapsed = time.monotonic() - began

    assert response.status_code == 302
    assert elapsed < 5, f"the action waited {elapsed:.1f} s for the lock"  # workers wait 20 s
    page = client.get(response.url).content.decode()
    assert "Nothing was done: the console&#x27;s database did not answer (it is locked by another process" in page
    assert BANNER in page and 'data-database-trouble="locked"' in page


@override_settings(TASKOPS_DB_LOCK_TIMEOUT_MS=LOCK_MS)
def test_a_page_that_cannot_get_its_lock_answers_503_with_a_clear_page(client, django_user_model):
    django_user_model.objects.create_user("someone", password="pw", is_staff=True)

    with locked("auth_user"):
        began = time.monotonic()
        response = client.post(reverse("admin:login"), {"username": "someone", "password": "pw"})
        elapsed = time.monotonic() - began

    assert response.status_code == 503
    assert elapsed < 5
    page = " ".join(response.content.decode().split())
    assert "The database is locked by another process: this page waited 0.5 seconds" in page
    assert "look at the page (or the audit log) before sending it again" in page


@pytest.mark.urls(__name__)
@override_settings(TASKOPS_DB_LOCK_TIMEOUT_MS=LOCK_MS)
def test_the_bound_holds_for_web_requests_only(client):
    before = _busy_timeout(HttpRequest()).content.decode()

    during = client.get("/busy-timeout/").content.decode()

    assert during in ("500", "500ms")
    # Workers, beat and management commands keep the connection's own wait (SQLite: 20 s here).
    assert _busy_timeout(HttpRequest()).content.decode() == before != during


@pytest.mark.urls(__name__)
def test_a_slow_statement_shows_the_banner_on_the_next_pages(role_client):
    client = role_client("Support")
    assert BANNER not in client.get(reverse("admin:index")).content.decode()

    assert client.get("/slow/").content == b"slept"

    page = client.get(reverse("admin:index")).content.decode()
    assert BANNER in page and 'data-database-trouble="slow"' in page
    assert "a query took 1." in page
