"""A login storm is locked out (per username and address, for a cool-off), and every way the suite logs in still works."""

from __future__ import annotations

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.http import HttpRequest
from django.test import Client, override_settings
from django.urls import reverse

from taskops.models import AuditEntry
from taskops.services.access import LOGIN_FAILED

pytestmark = pytest.mark.django_db(transaction=True)

LOGIN = reverse("admin:login")
PROXY = "10.0.0.5"


@pytest.fixture
def support(django_user_model):
    return django_user_model.objects.create_user("support", password="right-one", is_staff=True)


def _log_in(client: Client, password: str, **extra):
    return client.post(LOGIN, {"username": "support", "password": password, "next": "/admin/"}, **extra)


def _logged_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def test_sixty_wrong_passwords_then_the_right_one_is_refused(support):
    client = Client()
    statuses = [_log_in(client, f"guess-{n}").status_code for n in range(60)]

    response = _log_in(client, "right-one")

    limit = settings.AXES_FAILURE_LIMIT
    assert statuses[:limit - 1] == [200] * (limit - 1)  # the login form again, with its message
    assert set(statuses[limit - 1:]) == {429}
    assert response.status_code == 429 and not _logged_in(client)
    assert "Too many failed logins for support" in response.content.decode()
    # One record of a few kilobytes, whatever the storm's length.
    attempt = AccessAttempt.objects.get()
    assert attempt.failures_since_start == limit and len(attempt.post_data) < 5 * 1024
    assert "guess-" not in attempt.post_data  # passwords are never kept
    # Each failure is in the audit log; those refused by the lockout say so.
    failed = AuditEntry.objects.filter(action=LOGIN_FAILED).order_by("id")
    assert [entry.detail["locked_out"] for entry in failed[:limit + 1]] == [False] * (limit - 1) + [True, True]


def test_the_lockout_ends_after_the_cool_off(support):
    client = Client()
    for n in range(settings.AXES_FAILURE_LIMIT):
        _log_in(client, f"guess-{n}")
    assert _log_in(client, "right-one").status_code == 429

    AccessAttempt.objects.update(attempt_time=AccessAttempt.objects.get().attempt_time
                                 - settings.AXES_COOLOFF_TIME - timedelta(seconds=1))

    assert _log_in(client, "right-one").status_code == 302 and _logged_in(client)


def test_a_success_before_the_limit_clears_the_count(support):
    client = Client()
    for n in range(settings.AXES_FAILURE_LIMIT - 1):
        _log_in(client, f"guess-{n}")

    assert _log_in(client, "right-one").status_code == 302
    assert not AccessAttempt.objects.exists()


def test_the_same_user_from_another_address_is_not_locked_out(support):
    for n in range(settings.AXES_FAILURE_LIMIT):
        _log_in(Client(), f"guess-{n}", REMOTE_ADDR="198.51.100.1")

    elsewhere = Client()
    assert _log_in(elsewhere, "right-one", REMOTE_ADDR="198.51.100.2").status_code == 302


@override_settings(TASKOPS_TRUSTED_PROXIES=[PROXY])
def test_behind_the_trusted_proxy_the_lockout_is_per_client():
    from django.contrib.auth.models import User

    User.objects.create_user("support", password="right-one", is_staff=True)
    for n in range(settings.AXES_FAILURE_LIMIT):
        _log_in(Client(), f"guess-{n}", REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR="203.0.113.7")

    assert AccessAttempt.objects.get().ip_address == "203.0.113.7"
    locked = _log_in(Client(), "right-one", REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR="203.0.113.7")
    colleague = _log_in(Client(), "right-one", REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR="203.0.113.8")
    assert (locked.status_code, colleague.status_code) == (429, 302)


def test_without_a_trusted_proxy_a_forged_header_does_not_dodge_the_lockout(support):
    for n in range(settings.AXES_FAILURE_LIMIT):
        _log_in(Client(), f"guess-{n}", HTTP_X_FORWARDED_FOR=f"192.0.2.{n}")

    assert _log_in(Client(), "right-one", HTTP_X_FORWARDED_FOR="192.0.2.200").status_code == 429


def test_the_test_clients_logins_keep_working(support):
    assert Client().login(username="support", password="right-one")
    assert Client().login(request=HttpRequest(), username="support", password="right-one")
    assert not Client().login(username="support", password="wrong")
    forced = Client()
    forced.force_login(support)
    assert _logged_in(forced)
