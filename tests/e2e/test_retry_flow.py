"""Support's path in a real browser: find a failed run by a value in its args, read, retry, see it succeed."""

import uuid
from datetime import datetime, timezone

import pytest
from django.contrib.auth.models import Group
from playwright.sync_api import expect

from tests.e2e.conftest import log_in

from demo.models import PartnerStatus
from tests.support.poll import poll_until
from tests.support.tasks import send, unique

pytestmark = pytest.mark.django_db(transaction=True)


def test_support_finds_a_failed_run_reads_its_traceback_and_retries_it(
    live_server, page, start_worker, django_user_model
):
    from django_celery_results.models import TaskResult

    queue = unique("billing")
    start_worker(queue)
    PartnerStatus.objects.create(name="billing", down=True)
    account = uuid.uuid4()
    failed = send("demo.tasks.sync_invoices", args=[account, datetime(2026, 1, 5, tzinfo=timezone.utc)],
                  kwargs={"note": "customer 77-4410 escalation"}, queue=queue)
    send("demo.tasks.flaky_call", args=["unrelated"], kwargs={"fail_rate": 1.0}, queue=queue)
    poll_until(lambda: TaskResult.objects.filter(task_id=failed.id, status="FAILURE").exists(),
               timeout=30, message="the sync fails while the partner is down")
    PartnerStatus.objects.filter(name="billing").update(down=False)
    user = django_user_model.objects.create_user("helpdesk", password="pw", is_staff=True)
    user.groups.add(Group.objects.get(name="Support"))

    log_in(page, live_server, "helpdesk", "pw")
    page.goto(f"{live_server.url}/admin/taskops/taskrun/?status__exact=FAILURE")
    page.fill("#searchbar", "77-4410")
    page.press("#searchbar", "Enter")
    rows = page.locator("#result_list tbody tr")
    expect(rows).to_have_count(1)
    rows.first.locator("a").first.click()

    expect(page.locator("[data-run-state]")).to_have_text("FAILURE")
    expect(page.locator("[data-run-traceback]")).to_contain_text("billing partner is down")
    expect(page.locator("[data-run-args]")).to_contain_text(str(account))
    page.fill("form[action$='/retry/'] input[name=reason]", "partner back online")
    page.click("form[action$='/retry/'] input[type=submit]")

    expect(page.locator("ul.messagelist")).to_contain_text("Retried 1 run")
    expect(page.locator("[data-retry-state]")).to_have_text("SUCCESS", timeout=30_000)
