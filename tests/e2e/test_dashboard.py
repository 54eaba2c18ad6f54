"""A real browser watches the dashboard follow the broker without reloading the page."""

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import log_in

from tests.support.tasks import send

pytestmark = pytest.mark.django_db(transaction=True)


def test_dashboard_shows_a_queue_depth_change_without_a_reload(live_server, page, isolated_broker,
                                                               django_user_model):
    django_user_model.objects.create_superuser("watcher", password="pw")
    log_in(page, live_server, "watcher", "pw")
    depth = page.locator('#taskops-dashboard [data-queue-depth="reports"]')
    expect(depth).to_have_text("0")
    page.select_option("[data-live-control]", "2")
    page.evaluate("window.__sameDocument = true")

    for _ in range(3):
        send("demo.tasks.generate_report", args=["watched"], queue="reports", priority=9)

    expect(depth).to_have_text("3", timeout=15_000)
    assert page.evaluate("window.__sameDocument") is True  # swapped in place, not reloaded
    assert page.locator("[data-live-control]").input_value() == "2"
    # The choice is remembered by the browser.
    page.reload()
    assert page.locator("[data-live-control]").input_value() == "2"


def test_support_user_sees_the_dashboard_but_no_queue_controls(live_server, page, isolated_broker,
                                                                django_user_model):
    from django.contrib.auth.models import Group

    user = django_user_model.objects.create_user("helper", password="pw", is_staff=True)
    user.groups.add(Group.objects.get(name="Support"))
    log_in(page, live_server, "helper", "pw")
    expect(page.locator("#taskops-dashboard")).to_be_visible()

    page.click("#taskops-dashboard a:text-is('reports')")

    expect(page.locator("h1")).to_have_text("Queue reports")
    assert page.locator("form[action$='/pause/']").count() == 0
    assert page.locator("form[action$='/purge/']").count() == 0
