"""A real browser logs in with a demo login and sees the console's admin index."""

import pytest
from django.contrib.auth.models import User

from demo.schedules import demo_users_seed

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.smoke
def test_demo_admin_logs_in_and_sees_the_console_index(live_server, page):
    demo_users_seed()

    page.goto(f"{live_server.url}/")
    assert "/admin/login/" in page.url  # the root sends visitors to the login
    page.fill("#id_username", "admin")
    page.fill("#id_password", "demo")
    page.click("input[type=submit]")

    page.wait_for_selector("#content h1")
    assert page.inner_text("#content h1") == "Site administration"
    assert page.inner_text("#site-name") == "TaskOps Console"
    assert page.title() == "Site administration | TaskOps Console"
    # The console's task runs and schedule editor are reachable from the index.
    main = page.locator("#content-main")
    assert main.get_by_role("link", name="Task runs", exact=True).get_attribute("href") == (
        "/admin/taskops/taskrun/"
    )
    assert main.get_by_role("link", name="Periodic tasks", exact=True).get_attribute("href") == (
        "/admin/django_celery_beat/periodictask/"
    )


def test_wrong_password_is_refused_with_a_message(live_server, page):
    User.objects.create_user("support", password="right", is_staff=True)

    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "support")
    page.fill("#id_password", "wrong")
    page.click("input[type=submit]")

    assert "/admin/login/" in page.url
    assert "Please enter the correct username and password" in page.inner_text(".errornote")
