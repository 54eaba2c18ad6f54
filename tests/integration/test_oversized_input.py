"""Oversized input: big text fields stop in the browser and on the server, and a form past Django's limit gets a page saying so."""

from __future__ import annotations

import re

import pytest
from django.conf import settings as django_settings
from django.urls import reverse

from taskops.conf import config
from taskops.models import AuditEntry
from tests.integration.test_pages import RUN, SCHEDULE, TASK
from tests.support.tasks import waiting

pytestmark = pytest.mark.django_db(transaction=True)


def _maxlengths(page: str) -> dict[str, int]:
    """name -> maxlength of each text area on the page."""
    return {name: int(limit) for attrs in re.findall(r"<textarea([^>]*)>", page)
            for name in re.findall(r'name="([^"]+)"', attrs)
            for limit in re.findall(r'maxlength="(\d+)"', attrs)}


def test_every_big_text_field_carries_its_limit_to_the_browser(role_client, isolated_broker,
                                                             existing_run_and_job):
    client = role_client("superuser")
    limit = config.text_field_max_chars
    pages = {
        "run form (signature)": (reverse("admin:taskops_task_detail", args=[TASK]), {"arg_report"}),
        "run form (another task)": (
            reverse("admin:taskops_task_detail", args=["demo.tasks.send_email"]),
            {"arg_user_id", "arg_template"}),
        "retry with edits": (reverse("admin:taskops_taskrun_detail", args=[RUN]), {"args", "kwargs"}),
        "schedule editor": (reverse("admin:django_celery_beat_periodictask_change", args=[SCHEDULE]),
                            {"args", "kwargs", "headers", "description"}),
    }
    for label, (url, names) in pages.items():
        found = _maxlengths(client.get(url).content.decode())
        assert names <= set(found), (label, found)
        assert {found[name] for name in names} == {limit}, (label, found)


def test_text_past_the_limit_is_a_form_error_and_nothing_is_sent(role_client, isolated_broker,
                                                                 existing_run_and_job, settings):
    settings.TASKOPS_TEXT_FIELD_MAX_CHARS = 50
    client = role_client("superuser")
    long_json = '["' + "x" * 60 + '"]'

    sent = client.post(reverse("admin:taskops_task_run", args=[TASK]),
                       {"arg_report": long_json, "queue": "reports"})
    edited = client.post(reverse("admin:taskops_taskrun_retry_edited", args=[RUN]),
                         {"args": long_json, "kwargs": "{}", "queue": "default"})
    saved = client.post(reverse("admin:django_celery_beat_periodictask_change", args=[SCHEDULE]),
                        {"name": "permissions schedule", "task": TASK, "kind": "interval",
                         "every": "5", "period": "minutes", "args": long_json, "kwargs": "{}",
                         "headers": "{}", "reason": "longer arguments"})

    for response in (sent, edited, saved):
        assert response.status_code == 200
        assert "Ensure this value has at most 50 characters (it has 64)." in response.content.decode()
    assert 'maxlength="50"' in sent.content.decode()
    assert waiting("reports") == 0 and waiting("default") == 0
    assert not AuditEntry.objects.exists()


@pytest.mark.parametrize("data", [
    {"args": "[" + '"x",' * 700_000 + '"x"]', "kwargs": "{}", "queue": "default"},  # 2.8 MB
    {f"f{i}": "x" for i in range(1_100)},  # more fields than Django reads
])
def test_a_form_past_djangos_limit_gets_a_page_that_says_nothing_was_done(data, role_client,
                                                                          isolated_broker,
                                                                          existing_run_and_job):
    client = role_client("superuser")
    form = reverse("admin:taskops_taskrun_detail", args=[RUN])

    response = client.post(reverse("admin:taskops_taskrun_retry_edited", args=[RUN]), data,
                           HTTP_REFERER="http://testserver" + form)

    assert response.status_code == 413
    page = response.content.decode()
    assert "data-form-too-large" in page and "Nothing was saved, sent or changed." in page
    assert f'href="http://testserver{form}"' in page
    assert f"{django_settings.DATA_UPLOAD_MAX_MEMORY_SIZE / 2**20:.1f} MB" in page or "fields" in page
    assert waiting("default") == 0 and not AuditEntry.objects.exists()
