"""Refused requests and failed logins leave one audit entry each (who or which username, from where, what); a storm does not."""

from __future__ import annotations

import pytest
from django.test import Client, override_settings
from django.urls import reverse

from taskops.models import AuditEntry
from taskops.services.access import CSRF_FAILED, LOGIN_FAILED, REQUEST_REFUSED, VISITORS_THROTTLED

pytestmark = pytest.mark.django_db(transaction=True)

PROXY, CLIENT = "10.0.0.5", "203.0.113.7"
BEHIND_PROXY = {"REMOTE_ADDR": PROXY, "HTTP_X_FORWARDED_FOR": CLIENT}


@override_settings(TASKOPS_TRUSTED_PROXIES=[PROXY])
def test_a_403_at_a_view_is_one_audit_entry_with_who_where_and_what(role_client):
    client = role_client("Support")
    url = reverse("admin:taskops_queue_purge", args=["default"])

    response = client.post(url, {"reason": "x", "confirm": "default"}, **BEHIND_PROXY)

    assert response.status_code == 403
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.outcome, entry.source_ip) == (REQUEST_REFUSED, "refused", CLIENT)
    assert entry.actor_name.startswith("support-") and entry.actor is not None
    assert entry.target == "admin:taskops_queue_purge"
    assert entry.params == {"method": "POST", "path": url}
    assert entry.message == "You may not queue purge."


def test_a_403_from_the_admin_itself_is_audited_too(role_client):
    response = role_client("Managers").get(reverse("admin:taskops_auditentry_changelist"))

    assert response.status_code == 403
    assert AuditEntry.objects.get().action == REQUEST_REFUSED


@override_settings(TASKOPS_TRUSTED_PROXIES=[PROXY])
def test_a_post_without_its_csrf_token_is_one_audit_entry(role_client):
    client = role_client("Operations")
    client.handler.enforce_csrf_checks = True
    url = reverse("admin:taskops_queue_pause", args=["default"])

    assert client.post(url, {"reason": "x"}, **BEHIND_PROXY).status_code == 403

    entry = AuditEntry.objects.get()
    assert (entry.action, entry.outcome, entry.source_ip, entry.target) == (CSRF_FAILED, "refused", CLIENT, url)
    assert entry.actor_name.startswith("operations-")
    assert "CSRF" in entry.message


@override_settings(TASKOPS_TRUSTED_PROXIES=[PROXY])
def test_a_failed_login_is_one_audit_entry_with_the_username_and_address(django_user_model):
    django_user_model.objects.create_user("support", password="right", is_staff=True)

    response = Client().post(reverse("admin:login"), {"username": "support", "password": "hunter2"},
                             **BEHIND_PROXY)

    assert response.status_code == 200  # the form again, with its message
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.outcome, entry.target, entry.source_ip) == (LOGIN_FAILED, "refused",
                                                                         "support", CLIENT)
    assert (entry.actor, entry.actor_name) == (None, "anonymous")
    assert entry.params["username"] == "support"
    assert "hunter2" not in str(entry.params) + entry.message + str(entry.detail)  # never the password


@override_settings(TASKOPS_AUDIT_VISITOR_REFUSALS_PER_MINUTE=5)
def test_a_failed_login_storm_is_audited_up_to_the_cap_then_once(monkeypatch):
    monkeypatch.setattr("taskops.services.access._this_minute", lambda: 1)  # one minute throughout
    client = Client()
    for attempt in range(12):
        client.post(reverse("admin:login"), {"username": f"guess-{attempt}", "password": "x"},
                    REMOTE_ADDR=f"198.51.100.{attempt}")

    actions = list(AuditEntry.objects.order_by("id").values_list("action", flat=True))
    assert actions == [LOGIN_FAILED] * 5 + [VISITORS_THROTTLED]

    # The next minute records again.
    monkeypatch.setattr("taskops.services.access._this_minute", lambda: 2)
    client.post(reverse("admin:login"), {"username": "next-minute", "password": "x"})
    assert AuditEntry.objects.order_by("id").last().target == "next-minute"


@override_settings(TASKOPS_AUDIT_VISITOR_REFUSALS_PER_MINUTE=2)
def test_the_cap_is_for_visitors_only(role_client):
    client = role_client("Support")
    for _ in range(4):
        assert client.post(reverse("admin:taskops_queue_purge", args=["default"])).status_code == 403

    assert AuditEntry.objects.filter(action=REQUEST_REFUSED).count() == 4
