"""A host project that sets no TASKOPS_* setting at all: every page works on the defaults (taskops.conf)."""

from __future__ import annotations

import pytest
from django.conf import settings as django_settings
from django.urls import reverse

from taskops.conf import ConsoleSettings, config
from tests.integration.test_pages import GET_PAGES, OUTSIDE_ADMIN, SCHEDULE_FORMS

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def no_console_settings(settings):
    """Django's settings with every TASKOPS_* the deployment sets removed."""
    for name in [n for n in dir(django_settings) if n.startswith("TASKOPS_")]:
        delattr(settings, name)
    assert not [n for n in dir(django_settings) if n.startswith("TASKOPS_")]


def test_every_setting_has_its_default_without_a_project_value(no_console_settings):
    names = [name for name, value in vars(ConsoleSettings).items() if hasattr(value, "key")]

    values = {name: getattr(config, name) for name in names}

    assert len(values) >= 30
    assert values["read_only"] is False and values["sample_interval"] == 10.0
    assert values["mask_keys"] and values["task_deny"] == ["celery.*", "taskops.*"]


def test_every_page_renders_in_a_project_without_console_settings(
    no_console_settings, role_client, fake_cluster, existing_run_and_job
):
    client = role_client("superuser")
    pages = {**GET_PAGES, **OUTSIDE_ADMIN, **{key: None for key in SCHEDULE_FORMS}}

    for name, args in pages:
        response = client.get(reverse(name, args=args))
        assert response.status_code in (200, 404), (name, response.status_code)
    assert client.get(reverse("admin:index")).status_code == 200
