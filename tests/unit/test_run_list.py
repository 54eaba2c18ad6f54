"""The run list on a large table: counts are capped, nothing sorts or counts the whole table; cleanup."""

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django_celery_results.models import TaskResult

from taskops.models import RunRetry
from taskops.paginators import CappedCountPaginator

pytestmark = [pytest.mark.django_db, pytest.mark.db_engine]


@pytest.fixture
def runs():
    now = timezone.now()
    TaskResult.objects.bulk_create(
        TaskResult(task_id=f"run-{i}", task_name="demo.tasks.flaky_call",
                   status="FAILURE" if i % 3 == 0 else "SUCCESS", date_done=now - timedelta(days=i),
                   task_args=f"\"('customer-{i}',)\"")
        for i in range(60)
    )
    for i in range(60):  # date_done is auto_now: set it after the insert
        TaskResult.objects.filter(task_id=f"run-{i}").update(date_done=now - timedelta(days=i))


@pytest.mark.parametrize("query", [{}, {"_facets": "True"}, {"q": "customer"}])
def test_the_list_counts_at_most_the_cap_and_says_so(admin_client, runs, monkeypatch, query):
    monkeypatch.setattr(CappedCountPaginator, "cap", 25)

    with CaptureQueriesContext(connection) as queries:  # no counts per filter choice either
        page = admin_client.get(reverse("admin:taskops_taskrun_changelist"), query).content.decode()

    assert "more than 25 task runs" in page
    assert ("more than 25 results" in page) == ("q" in query) and "26 results" not in page
    counts = [q["sql"] for q in queries if "COUNT(" in q["sql"].upper()]
    assert counts and all("LIMIT" in sql.upper() for sql in counts), counts
    assert all('"traceback"' not in q["sql"] for q in queries if "taskresult" in q["sql"])


def test_a_filtered_list_under_the_cap_shows_its_exact_count(admin_client, runs):
    page = admin_client.get(reverse("admin:taskops_taskrun_changelist") + "?status__exact=FAILURE")

    assert "20 task runs" in page.content.decode()


def test_search_finds_a_value_inside_the_arguments_or_an_exact_id(admin_client, runs):
    url = reverse("admin:taskops_taskrun_changelist")

    by_value = admin_client.get(url, {"q": "customer-42"}).content.decode()
    by_id = admin_client.get(url, {"q": "run-7"}).content.decode()

    assert "run-42" in by_value and "run-41" not in by_value
    assert "run-7" in by_id and "run-70" not in by_id


def test_cleanup_deletes_old_runs_in_batches_and_their_retry_links(runs):
    RunRetry.objects.create(original_task_id="run-59", retry_task_id="retry-59", task_name="t")
    TaskResult.objects.create(task_id="still-running", status="STARTED")
    TaskResult.objects.filter(task_id="still-running").update(
        date_done=timezone.now() - timedelta(days=90))

    call_command("taskops_cleanup", "--days", "30", "--batch", "7")

    assert TaskResult.objects.filter(task_id__startswith="run-").count() == 30  # days 0..29 stay
    assert TaskResult.objects.filter(task_id="still-running").exists()
    assert not RunRetry.objects.filter(original_task_id="run-59").exists()


def test_a_run_is_never_shown_as_its_own_parent():
    from kombu.utils.json import dumps

    from taskops.capture import CALL_KEY, CAPTURE_VERSION
    from taskops.selectors import run_detail

    def capture(parent):
        return dumps({CALL_KEY: {"v": CAPTURE_VERSION, "task": "t", "args": [], "kwargs": {},
                                 "parent_id": parent}})

    # Celery's own retry re-sends a run under its id with parent_id set to that same id.
    TaskResult.objects.create(task_id="self-retried", status="FAILURE", meta=capture("self-retried"))
    TaskResult.objects.create(task_id="child", status="SUCCESS", meta=capture("the-parent"))

    assert run_detail("self-retried").parent_id is None
    assert run_detail("child").parent_id == "the-parent"


# --- Queue column and filter ---------------------------------------------------------------------


def _captured(queue: str | None) -> str | None:
    from kombu.utils.json import dumps

    from taskops.capture import CALL_KEY, CAPTURE_VERSION

    if queue is None:
        return None
    return dumps({"children": [], CALL_KEY: {
        "v": CAPTURE_VERSION, "task": "demo.tasks.flaky_call", "args": [], "exchange": "",
        # a kwarg named like the routing key must not be taken for it
        "kwargs": {"routing_key": "not-the-queue"}, "routing_key": queue, "priority": 0}})


@pytest.fixture
def queued_runs():
    from taskops.models import WorkerSeen

    rows = [("in-billing-1", "billing"), ("in-billing-2", "billing"), ("in-default", "default"),
            ("no-capture", None)]
    for task_id, queue in rows:
        TaskResult.objects.create(task_id=task_id, task_name="demo.tasks.flaky_call", status="FAILURE",
                                  meta=_captured(queue))
    TaskResult.objects.create(task_id="not-json", status="FAILURE", meta="{not json")
    WorkerSeen.objects.create(name="celery@billing", last_seen_at=timezone.now(), queues=["billing"])


def test_the_queue_of_each_run_is_shown_and_filters_the_list(admin_client, queued_runs):
    url = reverse("admin:taskops_taskrun_changelist")

    everything = admin_client.get(url).content.decode()
    billing = admin_client.get(url, {"queue": "billing"}).content.decode()

    assert 'class="field-queue">billing<' in everything and 'class="field-queue">default<' in everything
    assert "not-json" in everything  # meta that is not JSON has no queue, and breaks nothing
    assert "in-billing-1" in billing and "in-billing-2" in billing
    assert "in-default" not in billing and "no-capture" not in billing and "not-the-queue" not in billing
    assert "2 task runs" in billing


def test_queue_choices_come_from_the_configuration_and_the_workers_not_the_results(
    admin_client, queued_runs
):
    with CaptureQueriesContext(connection) as queries:
        page = admin_client.get(reverse("admin:taskops_taskrun_changelist")).content.decode()

    for queue in ("default", "reports", "emails", "billing"):  # configured, and a worker's
        assert f"?queue={queue}" in page
    assert not [q for q in queries if "DISTINCT" in q["sql"].upper() and "taskresult" in q["sql"]]


@pytest.mark.parametrize(("param", "value", "shown", "hidden"), [
    ("queue", "gone-queue", "gone-queue", "in-billing-1"),
    ("periodic_task_name", "deleted schedule", "deleted schedule", "in-billing-1"),
    ("worker", "celery@aged-out", "celery@aged-out", "in-billing-1"),
])
def test_a_filter_value_no_longer_among_the_choices_still_filters(
    admin_client, queued_runs, param, value, shown, hidden
):
    page = admin_client.get(reverse("admin:taskops_taskrun_changelist"), {param: value}).content.decode()

    assert shown in page and hidden not in page and "0 task runs" in page


@pytest.mark.parametrize("params", [{"queue": "a\x00b"}, {"worker": "\x00"}, {"q": "x\x00"},
                                    {"before": "\x00"}, {"before": "2026-01-01,99999999999999999999"},
                                    {"after": "0001-01-01T00:00:00+14:00"}, {"before": "yesterday"}])
def test_hostile_filters_and_positions_never_fail(admin_client, queued_runs, params):
    response = admin_client.get(reverse("admin:taskops_taskrun_changelist"), params)

    # A NUL never reaches the list (RejectNulMiddleware answers 400); a bad position is the
    # admin's "bad parameters" redirect.
    assert response.status_code in (200, 302, 400), response.status_code
    if response.status_code == 302:
        assert response["Location"].endswith("?e=1")


# --- Deep pages by key -----------------------------------------------------------------------------


def _ids(page: str) -> list[str]:
    import re

    return re.findall(r'title="(run-\d+|tie-\d+)">', page)


def _link(page: str, rel: str) -> str | None:
    import html
    import re

    found = re.search(rf'<a href="([^"]+)" rel="{rel}">', page)
    return html.unescape(found.group(1)) if found else None


@pytest.fixture
def paged(monkeypatch, runs):
    from taskops.admin.runs import TaskRunAdmin

    monkeypatch.setattr(TaskRunAdmin, "list_per_page", 7)
    # Runs finished in the same microsecond: only the id orders them.
    tie = timezone.now() - timedelta(days=30, hours=12)
    TaskResult.objects.bulk_create(TaskResult(task_id=f"tie-{i}", status="FAILURE") for i in range(9))
    TaskResult.objects.filter(task_id__startswith="tie-").update(date_done=tie)
    return [t for t in TaskResult.objects.order_by("-date_done", "-id").values_list("task_id", flat=True)]


def test_older_and_newer_pages_walk_the_whole_list_once_in_order_without_offsets(
    admin_client, paged
):
    url = reverse("admin:taskops_taskrun_changelist")
    seen, pages, page = [], [], admin_client.get(url).content.decode()
    with CaptureQueriesContext(connection) as queries:
        while True:
            pages.append(page)
            seen += _ids(page)
            older = _link(page, "next")
            if older is None:
                break
            page = admin_client.get(url + older).content.decode()

    assert seen == paged  # 69 runs, 9 of them in one microsecond: none twice, none missed
    assert len(pages) == 10 and "newest" in pages[-1]
    assert not [q for q in queries if "OFFSET" in q["sql"].upper()]
    back = [_ids(pages[-1])]
    page = pages[-1]
    while (newer := _link(page, "prev")) is not None:
        page = admin_client.get(url + newer).content.decode()
        back.insert(0, _ids(page))
    assert [i for ids in back for i in ids] == paged


def test_a_keyset_page_keeps_the_filters_and_a_filter_link_starts_from_the_newest(admin_client, paged):
    url = reverse("admin:taskops_taskrun_changelist")
    first = admin_client.get(url, {"status__exact": "FAILURE"}).content.decode()

    second = admin_client.get(url + _link(first, "next")).content.decode()

    failures = [t for t in paged if TaskResult.objects.get(task_id=t).status == "FAILURE"]
    assert _ids(first) + _ids(second) == failures[:14]
    assert "before=" not in second.split('id="changelist-filter"')[1]  # filter links drop the key


def test_jump_to_a_date_shows_the_runs_finished_before_it(admin_client, runs):
    moment = timezone.localtime(timezone.now() - timedelta(days=10, hours=1))

    page = admin_client.get(reverse("admin:taskops_taskrun_changelist"),
                            {"before": moment.strftime("%Y-%m-%dT%H:%M")}).content.decode()

    assert _ids(page)[:3] == ["run-11", "run-12", "run-13"]
    assert 'name="before"' in page and moment.strftime("%Y-%m-%dT%H:%M") in page


def test_dates_are_compact_so_the_list_stays_narrow(admin_client, runs):
    page = admin_client.get(reverse("admin:taskops_taskrun_changelist")).content.decode()
    done = timezone.localtime(TaskResult.objects.get(task_id="run-1").date_done)

    assert done.strftime("%Y-%m-%d %H:%M:%S") in page
    assert done.strftime("%b.") not in page  # not the admin's "Nov. 21, 2026, 9:48 p.m."


def test_the_edit_form_shows_typed_values_on_one_line_each_and_reads_them_back():
    import uuid
    from datetime import date, datetime
    from datetime import timezone as dt_timezone
    from decimal import Decimal

    from kombu.utils.json import loads

    from taskops.selectors.runs import editable_json

    account = uuid.UUID("9e6c8144-bb34-480a-80e8-3bd1e4382e9a")
    args = [account, datetime(2026, 3, 29, 1, 30, 15, 123456, tzinfo=dt_timezone.utc),
            {"amount": Decimal("12.30"), "on": date(2026, 1, 2), "ids": list(range(40)), "note": "é"}]

    text = editable_json(args)

    assert loads(text) == args  # the form reads back exactly what the task received
    lines = text.splitlines()
    assert '  {"__type__": "uuid", "__value__": {"hex": "9e6c8144-bb34-480a-80e8-3bd1e4382e9a"}},' in lines
    assert '  {"__type__": "datetime", "__value__": "2026-03-29T01:30:15.123456+00:00"},' in lines
    assert '    "amount": {"__type__": "decimal", "__value__": "12.30"},' in lines
    assert '    "ids": [' + ", ".join(map(str, range(40))) + "]," in lines
    assert editable_json({"note": "fixed"}) == '{"note": "fixed"}'


@pytest.mark.parametrize("params", [{"queue": "a\x00b"}, {"worker": "\x00"}, {"q": "x\x00"}])
def test_a_nul_is_refused_by_the_list_itself_where_no_middleware_stops_it(rf, admin_user, params):
    """The console installed in another project may not have RejectNulMiddleware."""
    from django.contrib import admin as django_admin
    from django.contrib.messages.storage.fallback import FallbackStorage

    from taskops.models import TaskRun

    request = rf.get(reverse("admin:taskops_taskrun_changelist"), params)
    request.user, request.session = admin_user, {}
    request._messages = FallbackStorage(request)

    response = django_admin.site._registry[TaskRun].changelist_view(request)
    if hasattr(response, "render"):
        response.render()

    assert response.status_code in (200, 302)  # an empty list, or the admin's bad-filter redirect
