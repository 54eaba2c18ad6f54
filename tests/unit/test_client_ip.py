"""The client's address: X-Forwarded-For only through trusted proxies, read from the right."""

from __future__ import annotations

import pytest
from django.test import RequestFactory, override_settings

from taskops.client_ip import client_ip
from taskops.services import Actor

PROXY = "10.0.0.5"


def _request(remote: str = PROXY, forwarded: str | None = None):
    extra = {"REMOTE_ADDR": remote}
    if forwarded is not None:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded
    return RequestFactory().get("/admin/", **extra)


def test_without_a_trusted_proxy_the_header_is_never_believed():
    request = _request(forwarded="203.0.113.7")

    assert client_ip(request) == PROXY


@override_settings(TASKOPS_TRUSTED_PROXIES=[PROXY])
def test_a_trusted_proxy_names_the_client():
    assert client_ip(_request(forwarded="203.0.113.7")) == "203.0.113.7"


@override_settings(TASKOPS_TRUSTED_PROXIES=[PROXY])
def test_an_address_the_client_put_in_front_is_ignored():
    # The client sent "X-Forwarded-For: 1.2.3.4"; the proxy appended the address it saw.
    assert client_ip(_request(forwarded="1.2.3.4, 203.0.113.7")) == "203.0.113.7"


@override_settings(TASKOPS_TRUSTED_PROXIES=["10.0.0.0/8"])
def test_a_chain_of_trusted_proxies_is_walked_from_the_right():
    assert client_ip(_request(forwarded="1.2.3.4, 203.0.113.7, 10.1.1.1")) == "203.0.113.7"


@override_settings(TASKOPS_TRUSTED_PROXIES=[PROXY])
def test_a_request_that_did_not_come_through_the_proxy_keeps_its_own_address():
    assert client_ip(_request(remote="198.51.100.9", forwarded="1.2.3.4")) == "198.51.100.9"


@override_settings(TASKOPS_TRUSTED_PROXIES=[PROXY])
@pytest.mark.parametrize(("forwarded", "expected"), [
    ("garbage", PROXY),
    ("", PROXY),
    ("[2001:db8::7]:443", "2001:db8::7"),
    ("203.0.113.7:51234", "203.0.113.7"),
])
def test_odd_headers(forwarded, expected):
    assert client_ip(_request(forwarded=forwarded)) == expected


@override_settings(TASKOPS_TRUSTED_PROXIES=[PROXY])
def test_the_audit_actor_is_the_client_behind_the_proxy():
    request = _request(forwarded="203.0.113.7")
    request.user = None

    assert Actor.from_request(request).ip == "203.0.113.7"
