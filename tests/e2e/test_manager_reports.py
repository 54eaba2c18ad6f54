"""A manager in a real browser: opens a report, sees its trend chart, downloads the XLSX; may not retry."""

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse
from django.utils import timezone
from openpyxl import load_workbook
from playwright.sync_api import expect

from taskops.models import AuditEntry, RunRetry
from tests.e2e.conftest import log_in
from tests.support.poll import poll_until
from tests.support.tasks import send

pytestmark = pytest.mark.django_db(transaction=True)

TASK = "demo.tasks.generate_report"


def _history(days: int) -> list[str]:
    """Earlier runs, one a day, as the worker would have left them (for a trend worth a chart)."""
    from django_celery_results.models import TaskResult

    ids = []
    for n in range(1, days + 1):
        task_id = f"history-{n}"
        done = timezone.now() - timedelta(days=n)
        TaskResult.objects.create(task_id=task_id, task_name=TASK,
                                  status="FAILURE" if n % 4 == 0 else "SUCCESS")
        TaskResult.objects.filter(task_id=task_id).update(
            date_created=done - timedelta(seconds=n + 1), date_started=done - timedelta(seconds=n),
            date_done=done)
        ids.append(task_id)
    return ids


def test_a_manager_reads_a_report_downloads_its_runs_and_may_not_retry(
        live_server, page, start_worker, django_user_model, settings, tmp_path):
    from django_celery_results.models import TaskResult

    settings.MEDIA_ROOT = str(tmp_path / "media")
    start_worker("reports", env={"TASKOPS_MEDIA_ROOT": settings.MEDIA_ROOT})
    runs = [send(TASK, args=[f"region-{n}"], queue="reports").id for n in range(2)]
    failed = send(TASK, args=["broken"], kwargs={"day": "not-a-date"}, queue="reports").id
    poll_until(lambda: TaskResult.objects.filter(task_id__in=[*runs, failed],
                                                 status__in=["SUCCESS", "FAILURE"]).count() == 3,
               timeout=30, message="the report runs end")
    history = _history(12)
    manager = django_user_model.objects.create_user("manager", password="pw", is_staff=True)
    manager.groups.add(Group.objects.get(name="Managers"))

    log_in(page, live_server, "manager", "pw")
    page.get_by_role("link", name="Reports", exact=True).first.click()
    page.get_by_role("link", name="Daily reports").click()

    expect(page.locator("h1")).to_have_text("Daily reports")
    chart = page.locator("[data-report-chart] svg[role=img]")
    expect(chart).to_be_visible()
    expect(chart).to_have_accessible_name(
        "Daily reports: daily duration and success rate, last 30 days", ignore_case=False)
    expect(chart).to_have_accessible_description(re.compile(r"15 runs ended, 11 succeeded \(73 %\)"))
    expect(chart.locator("g[data-series='median duration'] polyline").first).to_be_attached()
    expect(page.locator(f'tr[data-run="{failed}"] .taskops-badge')).to_have_text("FAILURE")
    assert page.locator("form[method=post]:not([action$='/logout/'])").count() == 0

    with page.expect_download() as download_info:
        page.click("[data-export=xlsx]")
    download = download_info.value
    assert download.suggested_filename.startswith("daily-reports-runs-")
    assert download.suggested_filename.endswith(".xlsx")
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    sheet = load_workbook(saved).active
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][:3] == ("run id", "task", "state")
    by_id = {row[0]: row for row in rows[1:]}
    assert set(by_id) == {*runs, failed, *history}
    assert by_id[failed][2] == "FAILURE" and by_id[runs[0]][2] == "SUCCESS"
    assert by_id[runs[0]][7].endswith(".csv")  # the output file the worker wrote
    assert AuditEntry.objects.get(action="report.export").actor_name == "manager"

    # The same manager, with a valid CSRF token, is refused a retry: 403, nothing sent.
    csrf = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    retry_url = live_server.url + reverse("admin:taskops_taskrun_retry", args=[failed])
    response = page.request.post(retry_url, headers={"X-CSRFToken": csrf},
                                 form={"reason": "let me try"}, max_redirects=0)
    assert response.status == 403
    assert "CSRF" not in response.text()
    assert not RunRetry.objects.exists()
    assert not AuditEntry.objects.filter(action__startswith="task.").exists()
