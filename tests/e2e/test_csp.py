"""A real browser walks the console's pages under its Content-Security-Policy: nothing refused, scripts working."""

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from taskops.conf import config
from tests.e2e.conftest import log_in

pytestmark = pytest.mark.django_db(transaction=True)

# A page of each kind: the dashboard, the console's lists (one with actions, one without, which
# carries Django's own hashed <style>), a page of the console's own, the schedule editor.
PAGES = [
    ("admin:index", ()),
    ("admin:taskops_taskrun_changelist", ()),
    ("admin:taskops_auditentry_changelist", ()),
    ("admin:taskops_task_changelist", ()),
    ("admin:taskops_report_changelist", ()),
    ("admin:django_celery_beat_periodictask_add", ()),
    ("admin:auth_user_changelist", ()),
]


def test_console_pages_work_under_the_content_security_policy(live_server, page, isolated_broker,
                                                              django_user_model):
    refused: list[str] = []
    page.on("console", lambda message: refused.append(message.text)
            if "Content Security Policy" in message.text else None)
    django_user_model.objects.create_superuser("watcher", password="pw")
    log_in(page, live_server, "watcher", "pw")

    for name, args in PAGES:
        response = page.goto(f"{live_server.url}{reverse(name, args=args)}")
        assert response.headers["content-security-policy"] == config.content_security_policy, name
        expect(page.locator("#content")).to_be_visible()

    # The schedule editor's script runs: it shows only the chosen kind's fields.
    page.goto(f"{live_server.url}{reverse('admin:django_celery_beat_periodictask_add')}")
    page.check("input[name=kind][value=interval]")
    expect(page.locator("[data-kind-group=interval]")).to_be_visible()
    expect(page.locator("[data-kind-group=crontab]")).to_be_hidden()
    # The dashboard's script runs: its refresh control is filled from the browser's choice.
    page.goto(f"{live_server.url}/admin/")
    page.select_option("[data-live-control]", "2")
    expect(page.locator("[data-live-control]")).to_have_value("2")
    assert refused == []
