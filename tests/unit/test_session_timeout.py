"""Sessions end 8 h after the login or after 30 idle minutes; a page's background refresh is not activity."""

from __future__ import annotations

import time

import pytest
from django.conf import settings
from django.test import override_settings

from taskops.middleware import SESSION_SEEN, SESSION_STARTED

pytestmark = pytest.mark.django_db

PAGE = "/admin/taskops/auditentry/"  # a page that reads only the database


@pytest.fixture
def logged_in(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("ops-lead", password="x"))
    assert client.get(PAGE).status_code == 200  # the first request notes the start
    return client


def _age(client, *, started: float | None = None, seen: float | None = None) -> None:
    """Move the session's start and last request back by so many seconds."""
    session = client.session
    if started is not None:
        session[SESSION_STARTED] -= started
    if seen is not None:
        session[SESSION_SEEN] -= seen
    session.save()


def test_the_defaults_suit_a_console_that_can_shut_workers_down():
    assert (settings.TASKOPS_SESSION_MAX_HOURS, settings.TASKOPS_SESSION_IDLE_MINUTES) == (8, 30)
    assert settings.SESSION_COOKIE_AGE == 8 * 3600


def test_a_session_ends_after_30_idle_minutes_with_a_message(logged_in):
    _age(logged_in, started=31 * 60, seen=31 * 60)

    response = logged_in.get(PAGE, follow=True)

    assert response.redirect_chain[-1][0].startswith("/admin/login/")
    assert "Your session ended after 30 minutes without activity" in response.content.decode()
    assert logged_in.get(PAGE).status_code == 302


def test_a_session_ends_8_hours_after_the_login_however_busy(logged_in):
    _age(logged_in, started=8 * 3600 + 1, seen=0)

    assert logged_in.get(PAGE).status_code == 302


def test_a_users_own_request_keeps_the_session_alive(logged_in):
    _age(logged_in, started=29 * 60, seen=29 * 60)
    assert logged_in.get(PAGE).status_code == 200
    _age(logged_in, started=29 * 60, seen=29 * 60)  # 58 minutes since the login, 29 idle

    assert logged_in.get(PAGE).status_code == 200


def test_the_background_refresh_is_not_activity(logged_in):
    _age(logged_in, seen=20 * 60)
    assert logged_in.get(PAGE, HTTP_X_TASKOPS_LIVE="1").status_code == 200
    _age(logged_in, seen=11 * 60)  # 31 minutes since the last request of the user's own

    assert logged_in.get(PAGE, HTTP_X_TASKOPS_LIVE="1").status_code == 302


@override_settings(TASKOPS_SESSION_IDLE_MINUTES=5)
def test_the_idle_timeout_is_a_setting(logged_in):
    _age(logged_in, seen=6 * 60)

    assert logged_in.get(PAGE).status_code == 302


def test_the_last_request_is_noted_at_most_once_a_minute(logged_in):
    before = logged_in.session[SESSION_SEEN]
    logged_in.get(PAGE)

    assert logged_in.session[SESSION_SEEN] == before
    assert time.time() - before < 60
