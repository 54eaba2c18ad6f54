"""Schedule export and import over HTTP: every format round-trips, the preview writes nothing, re-import is a no-op."""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import re
import time
from unittest import mock

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from django_celery_beat.models import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
    SolarSchedule,
)

from taskops.models import AuditEntry, PendingAction, ScheduleVersion
from taskops.schedule_forms import ScheduleForm
from taskops.schedules.definitions import definition_apply, definition_of
from taskops.schedules.transfer import COLUMNS, TransferError
from taskops.services.schedule_transfer import schedule_import_preview
from tests.support.hostile_files import HOSTILE_FILES

pytestmark = pytest.mark.django_db(transaction=True)

EXPORT = "admin:taskops_schedule_export"
IMPORT = "admin:taskops_schedule_import"
CONFIRM = "admin:taskops_schedule_import_confirm"
REPORT = "demo.tasks.generate_report"

SCHEDULES = [
    {"name": "nightly <b>sales</b> report",
     "schedule": {"kind": "crontab", "minute": "30", "hour": "2", "day_of_month": "*",
                  "month_of_year": "*", "day_of_week": "1-5", "timezone": "Europe/Berlin"},
     "task": REPORT, "args": ["sales", {"regions": ["eu", "üs"]}], "kwargs": {"rows": 3},
     "queue": "reports", "priority": 6, "enabled": True,
     "description": "=HYPERLINK(\"http://evil\")\nsecond line with a trailing space "},
    {"name": "poll partners",
     "schedule": {"kind": "interval", "every": 30, "period": "seconds"},
     "task": "demo.tasks.sync_invoices", "args": [], "kwargs": {}, "expire_seconds": 25,
     "headers": {"x-origin": "staging"}, "routing_key": "default", "exchange": "default"},
    {"name": "sunset lights",
     "schedule": {"kind": "solar", "event": "sunset", "latitude": "52.520000",
                  "longitude": "13.405000"},
     "task": REPORT, "args": ["lights"], "enabled": False},
    {"name": "one-off migration",
     "schedule": {"kind": "clocked", "clocked_time": "2031-05-04T03:02:01.500000+00:00"},
     "task": REPORT, "args": ["migration"], "one_off": True,
     "start_time": "2031-05-01T00:00:00+00:00"},
    {"name": "quarterly",
     "schedule": {"kind": "crontab", "minute": "0", "hour": "6", "day_of_month": "1",
                  "month_of_year": "1,4,7,10", "day_of_week": "*", "timezone": "UTC"},
     "task": REPORT, "args": ["quarter"], "expires": "2032-01-01T00:00:00+00:00",
     "enabled": False},
]


# Beat cannot load a solar schedule without ephem (nor any other then): the console refuses them.
EPHEM = importlib.util.find_spec("ephem") is not None
ROUND_TRIP = [s for s in SCHEDULES if s["schedule"]["kind"] != "solar" or EPHEM]


def _stored(definition: dict) -> PeriodicTask:
    """A schedule as seed data, code or the stock admin write it: none of the console's checks."""
    with mock.patch("taskops.schedules.definitions.schedule_problems", return_value={}):
        return definition_apply(definition)


def _definitions() -> dict[str, dict]:
    return {t.name: definition_of(t) for t in PeriodicTask.objects.all()}


def _empty_database() -> None:
    PeriodicTask.objects.all().delete()
    for model in (CrontabSchedule, IntervalSchedule, SolarSchedule, ClockedSchedule):
        model.objects.all().delete()


def _preview(client, content, file_name: str, file_format: str = ""):
    upload = SimpleUploadedFile(file_name, content if isinstance(content, bytes) else content.encode())
    return client.post(reverse(IMPORT), {"file": upload, "file_format": file_format})


def _counts(response) -> tuple[int, int, int, int]:
    plan = response.context["plan"]
    return len(plan.created), len(plan.changed), len(plan.unchanged), len(plan.problems)


def _confirm(client, preview, reason: str = "move staging schedules to production"):
    return client.post(reverse(CONFIRM), {"payload": preview.context["payload"], "reason": reason},
                       follow=True)


@pytest.mark.db_engine
@pytest.mark.parametrize("file_format", ["json", "yaml", "csv", "xlsx"])
def test_an_export_imported_into_an_empty_database_recreates_it_and_a_second_import_changes_nothing(
    file_format, role_client, fake_cluster
):
    for definition in ROUND_TRIP:
        definition_apply(definition)
    exported_state = _definitions()
    client = role_client("Operations")
    created = len(ROUND_TRIP)

    exported = client.get(reverse(EXPORT), {"format": file_format})
    assert exported.status_code == 200
    assert f'.{file_format}"' in exported["Content-Disposition"]
    content = exported.content
    _empty_database()

    preview = _preview(client, content, f"staging.{file_format}")
    assert preview.status_code == 200
    assert _counts(preview) == (created, 0, 0, 0)
    assert not PeriodicTask.objects.exists(), "the preview wrote nothing"
    done = _confirm(client, preview)

    assert "Imported staging." in done.content.decode()
    assert f"{created} created, 0 changed" in done.content.decode()
    assert _definitions() == exported_state
    assert ScheduleVersion.objects.filter(action="imported").count() == created
    entry = AuditEntry.objects.get(action="schedule.import")
    assert entry.outcome == "ok" and entry.reason == "move staging schedules to production"
    assert entry.params == {"file": f"staging.{file_format}", "format": file_format,
                            "created": created, "changed": 0, "unchanged": 0}

    again = _preview(client, content, f"staging.{file_format}")
    assert _counts(again) == (0, 0, created, 0)
    assert again.context["payload"] == "" and b"Nothing to import" in again.content
    if file_format != "xlsx":  # the same schedules export to the same bytes (XLSX has timestamps)
        assert client.get(reverse(EXPORT), {"format": file_format}).content == content


@pytest.mark.db_engine
def test_the_preview_shows_field_changes_writes_nothing_and_the_import_keeps_a_version(
    role_client, fake_cluster
):
    definition_apply({**SCHEDULES[0], "priority": 3})
    definition_apply(SCHEDULES[1])
    rows = [
        {"name": SCHEDULES[0]["name"], "task": REPORT, "schedule_kind": "crontab", "minute": "30",
         "hour": "4", "day_of_week": "1-5", "timezone": "Europe/Berlin", "priority": 6,
         "note": "ignored"},
        {"name": "poll partners", "task": "demo.tasks.sync_invoices", "schedule_kind": "interval",
         "every": 30, "period": "seconds"},
        {"name": "new from staging", "task": "staging.only.task", "schedule_kind": "interval",
         "every": "5", "period": "minutes", "args": "[1, 2]", "enabled": "false"},
    ]
    before = _definitions()
    client = role_client("Operations")

    preview = _preview(client, json.dumps(rows), "some.json")

    assert _counts(preview) == (1, 1, 1, 0)
    plan = preview.context["plan"]
    assert [(c["field"], c["before"], c["after"]) for c in plan.changed[0].changes] == [
        ("priority", 3, 6), ("schedule.hour", "2", "4")]
    assert plan.created[0].warnings == (
        "task staging.only.task is not registered here or on any live worker",)
    assert "Ignored columns: note." in plan.notes
    text = preview.content.decode()
    assert "nightly &lt;b&gt;sales&lt;/b&gt; report" in text and "<b>sales</b>" not in text
    assert _definitions() == before
    assert not ScheduleVersion.objects.exists() and not AuditEntry.objects.exists()

    _confirm(client, preview, reason="align with staging")

    changed = definition_of(PeriodicTask.objects.get(name=SCHEDULES[0]["name"]))
    assert (changed["priority"], changed["schedule"]["hour"]) == (6, "4")
    created = definition_of(PeriodicTask.objects.get(name="new from staging"))
    assert (created["args"], created["enabled"], created["schedule"]) == (
        [1, 2], False, {"kind": "interval", "every": 5, "period": "minutes"})
    version, found = ScheduleVersion.objects.filter(name=SCHEDULES[0]["name"]).order_by("-id")
    assert (version.action, version.reason) == ("imported", "align with staging")
    assert [c["field"] for c in version.changes] == ["priority", "schedule.hour"]
    # It was written outside the console: the state the import changed is kept to restore.
    assert (found.action, found.actor_name, found.definition) == (
        "found", "outside the console", before[SCHEDULES[0]["name"]])
    assert ScheduleVersion.objects.filter(name="poll partners").count() == 0
    assert AuditEntry.objects.filter(action="schedule.import").count() == 1


BAD_FILES = [
    ("broken.json", b'[{"name": "x",', "", "This is not valid JSON"),
    ("object.json", b'{"name": "x"}', "", "must hold a list of objects"),
    ("alias.yaml", b"- &a {name: x}\n- *a\n", "", "YAML aliases"),
    ("noname.csv", b"task,schedule_kind\ndemo.tasks.x,interval\n", "", "no &#x27;name&#x27; column"),
    ("latin1.csv", "name\nnaïve\n".encode("latin-1"), "", "not UTF-8"),
    ("fake.xlsx", b"not a zip file", "", "cannot be read as XLSX"),
    ("schedules.json", b'[{"name": "x"}]', "xlsx", "cannot be read as XLSX"),
    ("schedules.txt", b'[{"name": "x"}]', "", "Choose the format"),
    ("empty.csv", b"name,task\n,\n", "", "holds no schedules"),
]


@pytest.mark.parametrize(("file_name", "content", "file_format", "message"), BAD_FILES)
def test_a_file_that_cannot_be_read_is_explained_on_the_form(file_name, content, file_format,
                                                             message, role_client, fake_cluster):
    response = _preview(role_client("Operations"), content, file_name, file_format)

    assert response.status_code == 200
    assert message in response.content.decode()
    assert "plan" not in response.context and not PeriodicTask.objects.exists()


def test_rows_with_problems_are_listed_and_block_the_whole_import(role_client, fake_cluster):
    csv_text = (
        "name,task,schedule_kind,minute,hour,timezone,every,period,priority,args,enabled\n"
        "good,demo.tasks.generate_report,interval,,,,10,minutes,,,\n"
        "bad minute,demo.tasks.generate_report,crontab,61,*,UTC,,,,,\n"
        "bad zone,demo.tasks.generate_report,crontab,0,*,Mars/Base,,,,,\n"
        "bad values,demo.tasks.generate_report,interval,,,,0,fortnights,300,{not json},maybe\n"
        "no task,,interval,,,,10,minutes,,,\n"
        "good,demo.tasks.generate_report,interval,,,,20,minutes,,,\n"
        ",demo.tasks.generate_report,interval,,,,10,minutes,,,\n"
    )

    response = _preview(role_client("Operations"), csv_text, "mixed.csv")

    plan = response.context["plan"]
    problems = {p.row: p.message for p in plan.problems}
    assert set(problems) == {3, 4, 5, 6, 7, 8}
    assert "minute" in problems[3].lower()
    assert "Mars/Base" in problems[4]
    for part in ("every must be 1 or more", "priority must be 0 to 255", "args is not valid JSON",
                 "enabled must be true or false"):
        assert part in problems[5]
    assert problems[6] == "task is empty"
    assert problems[7] == "the name appears twice (rows 2 and 7)"
    assert problems[8].startswith("name is empty")
    assert response.context["payload"] == "" and b"import-confirm" not in response.content
    assert not PeriodicTask.objects.exists()


NEVER_RIGHT = [
    ({"schedule_kind": "crontab", "minute": "0", "hour": "0", "day_of_month": "30",
      "month_of_year": "2", "timezone": "UTC"}, "It can never fire"),
    ({"schedule_kind": "crontab", "minute": "0", "hour": "9", "day_of_month": "31",
      "month_of_year": "4,6", "day_of_week": "*", "timezone": "Europe/Berlin"}, "It can never fire"),
    ({"schedule_kind": "crontab", "minute": "0", "hour": "9", "day_of_month": "13",
      "month_of_year": "*", "day_of_week": "5", "timezone": "Mars/Base"}, "Unknown time zone"),
    ({"schedule_kind": "interval", "every": 10**9, "period": "days"}, "beat cannot count that far"),
    *([] if EPHEM else [({"schedule_kind": "solar", "event": "sunset", "latitude": "52.5",
                         "longitude": "13.4"}, "ephem")]),
]


@pytest.mark.parametrize(("row", "message"), NEVER_RIGHT)
def test_the_import_refuses_a_schedule_the_editor_refuses_with_the_same_words(
        row, message, role_client, fake_cluster):
    """One check for the editor, the import and every write: 30 February is no schedule anywhere."""
    fields = {("kind" if k == "schedule_kind" else k): v for k, v in row.items()}
    form = ScheduleForm(fields)
    assert not form.is_valid()
    editor_says = " ".join(m for messages in form.errors.values() for m in messages)
    assert message in editor_says

    response = _preview(role_client("Operations"), json.dumps(
        [{"name": "imported", "task": REPORT, **row}]), "odd.json")

    plan = response.context["plan"]
    assert not plan.created and [p.row for p in plan.problems] == [1]
    assert message in plan.problems[0].message and editor_says in plan.problems[0].message
    assert response.context["payload"] == "" and not PeriodicTask.objects.exists()
    # Nor can a kept definition put it back (a restore, a clone): every write asks the same check.
    with pytest.raises(ValidationError, match=re.escape(message)):
        definition_apply({"name": "written", "task": REPORT, "schedule": {
            "kind": fields.pop("kind"), **fields}})


def test_the_confirm_needs_a_reason_and_an_unaltered_preview_of_the_same_user(
    role_client, django_user_model, fake_cluster
):
    client = role_client("Operations")
    preview = _preview(client, json.dumps([{**SCHEDULES[1], "schedule_kind": "interval",
                                            "every": 30, "period": "seconds", "schedule": None}]),
                       "one.json")
    payload = preview.context["payload"]

    no_reason = client.post(reverse(CONFIRM), {"payload": payload, "reason": " "}, follow=True)
    assert "needs a reason" in no_reason.content.decode()
    altered = client.post(reverse(CONFIRM), {"payload": payload[:-3] + "abc", "reason": "why not"},
                          follow=True)
    assert "altered" in altered.content.decode()
    other = role_client("Operations")  # another user in the same client
    stolen = other.post(reverse(CONFIRM), {"payload": payload, "reason": "why not"}, follow=True)
    assert "belongs to another user" in stolen.content.decode()

    assert not PeriodicTask.objects.exists()
    assert list(AuditEntry.objects.values_list("action", "outcome")) == [("schedule.import", "refused")] * 3


@pytest.mark.db_engine
def test_schedules_changed_since_the_preview_stop_the_whole_import(role_client, fake_cluster):
    definition_apply(SCHEDULES[1])
    client = role_client("Operations")
    rows = [{"name": "brand new", "task": REPORT, "schedule_kind": "interval", "every": 1,
             "period": "hours"},
            {"name": "poll partners", "task": "demo.tasks.sync_invoices", "schedule_kind": "interval",
             "every": 45, "period": "seconds"}]
    preview = _preview(client, json.dumps(rows), "two.json")
    assert _counts(preview) == (1, 1, 0, 0)
    # Someone edits the schedule meanwhile: the import would now change 40 to 45, not 30 to 45.
    definition_apply({**SCHEDULES[1], "schedule": {"kind": "interval", "every": 40,
                                                   "period": "seconds"}})

    response = _confirm(client, preview)

    assert "changed since the preview" in response.content.decode()
    assert not PeriodicTask.objects.filter(name="brand new").exists()
    assert PeriodicTask.objects.get(name="poll partners").interval.every == 40
    assert not ScheduleVersion.objects.exists()
    assert AuditEntry.objects.get().outcome == "refused"


def test_with_approvals_on_an_import_waits_for_a_second_operator(role_client, settings,
                                                                 django_user_model, fake_cluster):
    from taskops.services import Actor, approval_decide

    settings.TASKOPS_REQUIRE_APPROVAL = True
    client = role_client("Operations")
    rows = [{"name": "approved one", "task": REPORT, "schedule_kind": "interval", "every": 2,
             "period": "hours"}]
    asked = _confirm(client, _preview(client, json.dumps(rows), "approve.json"))

    assert "Waiting for approval" in asked.content.decode()
    assert not PeriodicTask.objects.exists()
    pending = PendingAction.objects.get(action="schedule.import")
    second = django_user_model.objects.create_superuser("second-operator", password="x")
    done = approval_decide(actor=Actor(second), approval_id=pending.pk, approve=True)

    assert done.outcome == "ok", done.message
    assert PeriodicTask.objects.get(name="approved one").interval.every == 2
    assert ScheduleVersion.objects.get(name="approved one").actor_name == "second-operator"


def test_support_and_managers_export_but_may_not_import(role_client, fake_cluster):
    definition_apply(SCHEDULES[0])
    for role in ("Support", "Managers"):
        client = role_client(role)
        exported = client.get(reverse(EXPORT), {"format": "csv"})
        assert exported.status_code == 200 and SCHEDULES[0]["name"].encode() in exported.content
        assert client.get(reverse(IMPORT)).status_code == 403
        listing = client.get(reverse("admin:django_celery_beat_periodictask_changelist")).content
        assert b"data-schedule-export" in listing and b"data-schedule-import" not in listing
    ops_listing = role_client("Operations").get(
        reverse("admin:django_celery_beat_periodictask_changelist")).content
    assert b"data-schedule-import" in ops_listing
    assert AuditEntry.objects.filter(action="schedule.export", outcome="ok").count() == 2


def test_export_of_some_schedules_and_an_unknown_format(role_client, fake_cluster):
    for definition in SCHEDULES[:3]:
        _stored(definition)
    client = role_client("Managers")

    some = client.get(reverse(EXPORT), {"format": "json", "name": ["poll partners", "sunset lights"]})
    assert [row["name"] for row in json.loads(some.content)] == ["poll partners", "sunset lights"]
    unknown = client.get(reverse(EXPORT), {"format": "exe"}, follow=True)
    assert unknown.status_code == 200 and "Unknown export format" in unknown.content.decode()


FUZZ_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-10**20, max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=30),
    st.sampled_from(["*", "61", "1-5", "*/0", "UTC", "Mars/Base", "../../etc/passwd", "seconds",
                     "sunset", "[1]", "{}", "{bad", "2026-02-30T00:00", "2030-01-01T00:00:00+00:00",
                     "crontab", "interval", "solar", "clocked", "=1+1", "\x00", "x" * 300]),
    st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)
VALID_ROW = st.fixed_dictionaries({
    "name": st.sampled_from(["a", "b", "a <b>"]), "task": st.just(REPORT),
    "schedule_kind": st.just("interval"), "every": st.integers(min_value=1, max_value=99),
    "period": st.sampled_from(["seconds", "minutes", "fortnights"]),
}, optional={"priority": st.integers(min_value=-1, max_value=256), "enabled": st.booleans(),
             "args": st.sampled_from(["[]", "[1]", "{}", "nope"]), "queue": st.text(max_size=5)})
FUZZ_ROWS = st.lists(VALID_ROW | st.fixed_dictionaries(
        {"name": st.one_of(st.sampled_from(["a", "b", "a <b>"]), st.text(max_size=8)),
         "schedule_kind": st.one_of(st.sampled_from(["crontab", "interval", "solar", "clocked"]),
                                    FUZZ_VALUES)},
        optional={column: FUZZ_VALUES for column in [*COLUMNS, "extra"]
                  if column not in ("name", "schedule_kind")}),
    min_size=1, max_size=4)


def test_any_rows_give_a_plan_or_a_clear_error_and_write_nothing(fake_cluster):
    """Whatever a JSON, YAML or CSV file holds, the preview explains it; it never fails or writes."""
    import yaml

    @hypothesis_settings(max_examples=60, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(rows=FUZZ_ROWS, file_format=st.sampled_from(["json", "yaml", "csv"]))
    def check(rows, file_format):
        if file_format == "json":
            content = json.dumps(rows, default=str, allow_nan=True).encode()
        elif file_format == "yaml":
            content = yaml.safe_dump(rows).encode()
        else:
            columns = sorted({c for row in rows for c in row})
            out = io.StringIO()
            writer = csv.writer(out)
            writer.writerow(columns)
            writer.writerows([["" if row.get(c) is None else str(row.get(c)) for c in columns]
                              for row in rows])
            content = out.getvalue().encode()
        try:
            plan = schedule_import_preview(content=content, file_name=f"fuzz.{file_format}",
                                           file_format=file_format)
        except TransferError:
            return
        assert len(plan.schedules) + len(plan.problems) >= 1
        assert not PeriodicTask.objects.exists()

    check()


@pytest.mark.parametrize("label", sorted(HOSTILE_FILES))
def test_a_file_past_a_limit_is_refused_while_it_is_read_and_nothing_is_imported(
    label, role_client, isolated_broker
):
    file_format, build = HOSTILE_FILES[label]
    content = build()
    client = role_client("Operations")

    started = time.monotonic()
    response = _preview(client, content, f"hostile.{file_format}")
    elapsed = time.monotonic() - started

    assert response.status_code == 200
    assert elapsed < 5, f"{label} took {elapsed:.1f} s to refuse"
    errors = " ".join(response.context["form"].errors["file"])
    assert re.search(r"more than [\d,]+ (rows|columns|deep)|unpacks to [\d.]+ MB", errors), errors
    assert "payload" not in response.context
    assert not PeriodicTask.objects.exists()


def test_the_import_limits_are_settings(role_client, isolated_broker, settings):
    settings.TASKOPS_IMPORT_MAX_ROWS = 2
    settings.TASKOPS_IMPORT_MAX_FILE_BYTES = 1024
    client = role_client("Operations")
    rows = "name,task\na,x\nb,x\nc,x\n"

    three = _preview(client, rows, "three.csv")
    big = _preview(client, "name\n" + "x" * 2000, "big.csv")

    assert "more than 2 rows" in " ".join(three.context["form"].errors["file"])
    assert "The file is larger than 1 KB." in big.context["form"].errors["file"]
    assert "At most 1 KB." in big.content.decode()


def test_the_import_and_the_schedule_list_agree_on_which_task_names_are_tasks(role_client, fake_cluster):
    """One answer (selectors.catalog.task_registered): Celery's own plumbing such as
    celery.chord_unlock is no schedulable task for either, celery.backend_cleanup is for both."""
    from taskops.selectors.schedules import task_names

    rows = [{"name": "unlock chords", "task": "celery.chord_unlock", "schedule_kind": "interval",
             "every": 5, "period": "minutes"},
            {"name": "clean results", "task": "celery.backend_cleanup", "schedule_kind": "crontab",
             "minute": "0", "hour": "4"}]
    client = role_client("Operations")

    plan = _preview(client, json.dumps(rows), "builtins.json").context["plan"]

    warned = {s.name: s.warnings for s in plan.created}
    assert warned == {"unlock chords": (
        "task celery.chord_unlock is not registered here or on any live worker",),
        "clean results": ()}
    names = task_names().names
    assert "celery.backend_cleanup" in names and "celery.chord_unlock" not in names
    for row in rows:  # the list flags exactly what the import warned about
        definition_apply({"name": row["name"], "task": row["task"],
                          "schedule": {"kind": "interval", "every": 5, "period": "minutes"}})
    listing = client.get(reverse("admin:django_celery_beat_periodictask_changelist")).content.decode()
    assert listing.count("data-task-unknown") == 1
    flagged_row = listing[listing.index("data-task-unknown") - 800:listing.index("data-task-unknown")]
    assert "chord_unlock" in flagged_row and "backend_cleanup" not in flagged_row
