"""Every page answers with the broker down: its usual status, never a 500, and the banner where it reads the cluster.

Driven by test_pages.py's URL tables, on the in-memory cluster with its broker down (the fake
raises BrokerUnavailable as the real adapters do: test_adapter_contracts.py). The real
broker's faults (stopped, frozen) and their time bounds are tested in test_pages.py.
"""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.integration.test_pages import GET_PAGES, LIVE_PAGES, SCHEDULE_FORMS

pytestmark = pytest.mark.django_db

BANNER = "The broker is not answering"
PAGES = sorted({*GET_PAGES, *LIVE_PAGES, *SCHEDULE_FORMS})


@pytest.fixture
def broker_down(fake_cluster, existing_run_and_job):
    fake_cluster.worker_add("nobody@nowhere", "default")
    fake_cluster.broker_up = False
    return fake_cluster


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p[0].split(":")[1])
def test_each_page_answers_as_usual_with_the_broker_down(page, broker_down, role_client):
    name, args = page
    client = role_client("Operations")
    expected = GET_PAGES.get(page, {}).get("Operations")
    expected = SCHEDULE_FORMS[page]["Operations"][0] if page in SCHEDULE_FORMS else expected

    response = client.get(reverse(name, args=args))

    assert response.status_code == (expected or 200), (name, response.status_code)
    if page in LIVE_PAGES:
        assert BANNER in response.content.decode(), name
