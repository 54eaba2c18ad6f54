"""Schedules as files: one flat row per schedule keyed by name, in JSON, YAML, CSV or XLSX, and back."""

from __future__ import annotations

import io
import json
import re
from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timezone as dt_timezone
from decimal import Decimal, InvalidOperation
from typing import Any

import openpyxl
import yaml
from django.core import signing
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django_celery_beat.models import PeriodicTask, crontab_schedule_celery_timezone
from import_export import resources, widgets
from import_export.fields import Field
from import_export.formats import base_formats
from openpyxl.utils.exceptions import IllegalCharacterError

from taskops.bounded_files import FileLimits, FileRefused, csv_rows, json_data, xlsx_rows, yaml_data
from taskops.conf import config
from taskops.schedules.definitions import SCHEDULE_KINDS, TASK_FIELDS, coordinate_text, definition_of
from taskops.spreadsheets import InertCSV, inert_dataset, spreadsheet_value

PAYLOAD_MAX_AGE_SECONDS = 3600
_PAYLOAD_SALT = "taskops.schedule_import"

# The columns of each schedule kind (a row fills those of its schedule_kind, the rest stay empty).
SCHEDULE_COLUMNS: dict[str, tuple[str, ...]] = {
    "crontab": ("minute", "hour", "day_of_month", "month_of_year", "day_of_week", "timezone"),
    "interval": ("every", "period"),
    "solar": ("event", "latitude", "longitude"),
    "clocked": ("clocked_time",),
}
_REQUIRED_SCHEDULE_COLUMNS = {
    "interval": ("every", "period"),
    "solar": ("event", "latitude", "longitude"),
    "clocked": ("clocked_time",),
}
_JSON_DEFAULTS = {"args": [], "kwargs": {}, "headers": {}}
_BOOL_DEFAULTS = {"enabled": True, "one_off": False}


class TransferError(ValueError):
    """The file (or the kept preview) cannot be used at all; the message says why."""


def _blank(value: Any) -> bool:
    return value is None or value == ""


class _Cell(widgets.Widget):
    """A strict column: clean() raises ValueError saying what is wrong; render() keeps native values."""

    def render(self, value, obj=None, **kwargs):
        return value


class TextCell(_Cell):
    """Text kept exactly as written; a blank cell is None (`nullable`) or ""."""

    def __init__(self, *, nullable: bool = False):
        super().__init__()
        self.nullable = nullable

    def clean(self, value, row=None, **kwargs):
        if _blank(value):
            return None if self.nullable else ""
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # a spreadsheet turned "5" into 5.0
        if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
            raise ValueError(f"must be text, not {_shown(value)}")
        return str(value)


class IntegerCell(_Cell):
    def __init__(self, *, minimum: int, maximum: int | None = None):
        super().__init__()
        self.minimum, self.maximum = minimum, maximum

    def clean(self, value, row=None, **kwargs):
        if _blank(value):
            return None
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d{1,12}\s*", value):
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"must be a whole number, not {_shown(value)}")
        if value < self.minimum or (self.maximum is not None and value > self.maximum):
            upper = f" to {self.maximum}" if self.maximum is not None else " or more"
            raise ValueError(f"must be {self.minimum}{upper}, not {value}")
        return value


class BooleanCell(_Cell):
    _WORDS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}

    def clean(self, value, row=None, **kwargs):
        if _blank(value):
            return None
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        word = self._WORDS.get(str(value).strip().lower()) if isinstance(value, str) else None
        if word is None:
            raise ValueError(f"must be true or false, not {_shown(value)}")
        return word


class JsonCell(_Cell):
    """JSON text in every format (a JSON or YAML file may also give the list or object itself)."""

    def __init__(self, kind: type, label: str):
        super().__init__()
        self.kind, self.label = kind, label

    def clean(self, value, row=None, **kwargs):
        if _blank(value):
            return None
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except (ValueError, RecursionError) as exc:
                raise ValueError(f"is not valid JSON ({exc})") from None
        if not isinstance(value, self.kind):
            raise ValueError(f"must be a JSON {self.label}")
        return value

    def render(self, value, obj=None, **kwargs):
        if value is None or isinstance(value, str):
            return value  # a stored value that is not JSON is exported as written (and refused back)
        return json.dumps(value)


class DateTimeCell(_Cell):
    """ISO 8601 text; a time without a zone is in the console's time zone. Kept as UTC ISO text."""

    def clean(self, value, row=None, **kwargs):
        if _blank(value):
            return None
        when = value
        if isinstance(value, str):
            try:
                when = parse_datetime(value.strip())
            except ValueError:
                when = None
        if not isinstance(when, datetime):
            raise ValueError(f"must be a date and time such as 2030-01-31T02:30:00+00:00, not {_shown(value)}")
        if timezone.is_naive(when):
            when = timezone.make_aware(when, timezone.get_default_timezone())
        return when.astimezone(dt_timezone.utc).isoformat()


class CoordinateCell(_Cell):
    """A latitude or longitude, kept as text with the 6 decimals the database keeps."""

    def clean(self, value, row=None, **kwargs):
        if _blank(value):
            return None
        if isinstance(value, bool):
            raise ValueError("must be a number")
        try:
            return coordinate_text(str(value).strip())
        except (InvalidOperation, ValueError):
            raise ValueError(f"must be a number, not {_shown(value)}") from None


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _field(column: str, widget: widgets.Widget) -> Field:
    return Field(attribute=column, column_name=column, widget=widget)


class ScheduleResource(resources.Resource):
    """The columns every format shares: name first (the key), the schedule flattened, then the task."""

    name = _field("name", TextCell())
    task = _field("task", TextCell())
    enabled = _field("enabled", BooleanCell())
    schedule_kind = _field("schedule_kind", TextCell())
    minute = _field("minute", TextCell())
    hour = _field("hour", TextCell())
    day_of_month = _field("day_of_month", TextCell())
    month_of_year = _field("month_of_year", TextCell())
    day_of_week = _field("day_of_week", TextCell())
    timezone = _field("timezone", TextCell())
    every = _field("every", IntegerCell(minimum=1))
    period = _field("period", TextCell())
    event = _field("event", TextCell())
    latitude = _field("latitude", CoordinateCell())
    longitude = _field("longitude", CoordinateCell())
    clocked_time = _field("clocked_time", DateTimeCell())
    args = _field("args", JsonCell(list, "list"))
    kwargs = _field("kwargs", JsonCell(dict, "object"))
    queue = _field("queue", TextCell(nullable=True))
    exchange = _field("exchange", TextCell(nullable=True))
    routing_key = _field("routing_key", TextCell(nullable=True))
    headers = _field("headers", JsonCell(dict, "object"))
    priority = _field("priority", IntegerCell(minimum=0, maximum=255))
    expires = _field("expires", DateTimeCell())
    expire_seconds = _field("expire_seconds", IntegerCell(minimum=0))
    one_off = _field("one_off", BooleanCell())
    start_time = _field("start_time", DateTimeCell())
    description = _field("description", TextCell())

    class Meta:
        import_id_fields = ("name",)


COLUMNS: tuple[str, ...] = tuple(ScheduleResource.fields)
_SCHEDULE_COLUMN_SET = {c for columns in SCHEDULE_COLUMNS.values() for c in columns}


class SafeXLSX(base_formats.XLSX):
    """XLSX where text stays text (inert_dataset: no cell is a formula), one sheet, header frozen."""

    def export_data(self, dataset, **kwargs) -> bytes:
        book = openpyxl.Workbook()
        sheet = book.active
        sheet.title = "schedules"
        sheet.append(list(dataset.headers))
        for number, row in enumerate(inert_dataset(dataset), start=2):
            try:
                sheet.append(list(row))
            except IllegalCharacterError:
                raise TransferError(
                    f"Row {number} ({_shown(row[0])}) holds control characters, which XLSX cannot "
                    "store: export as JSON instead.") from None
        sheet.freeze_panes = "A2"
        out = io.BytesIO()
        book.save(out)
        return out.getvalue()


class ReadableJSON(base_formats.JSON):
    """JSON with one indented object per schedule, so two environments' exports diff line by line."""

    def export_data(self, dataset, **kwargs) -> str:
        return json.dumps(dataset.dict, indent=2, ensure_ascii=False) + "\n"


class ReadableYAML(base_formats.YAML):
    """YAML in block style, columns in their order (tablib writes each schedule on one line)."""

    def export_data(self, dataset, **kwargs) -> str:
        return yaml.safe_dump([dict(row) for row in dataset.dict], default_flow_style=False,
                              allow_unicode=True, sort_keys=False)


FORMATS: dict[str, type[base_formats.Format]] = {
    "json": ReadableJSON,
    "yaml": ReadableYAML,
    "csv": InertCSV,
    "xlsx": SafeXLSX,
}
FORMAT_EXTENSIONS = {"json": "json", "yaml": "yaml", "yml": "yaml", "csv": "csv", "xlsx": "xlsx"}


def definition_row(definition: dict[str, Any]) -> dict[str, Any]:
    """A definition (schedule_definitions.definition_of) as one flat row of COLUMNS."""
    schedule = definition.get("schedule") or {}
    row: dict[str, Any] = {column: None for column in COLUMNS}
    row.update({field: definition.get(field) for field in TASK_FIELDS})
    row["name"] = definition["name"]
    row["schedule_kind"] = schedule.get("kind") or None
    for column in SCHEDULE_COLUMNS.get(schedule.get("kind"), ()):
        row[column] = schedule.get(column)
    return row


def schedules_export(tasks: Iterable[PeriodicTask], file_format: str) -> bytes | str:
    """The schedules as a file in `file_format` (json, yaml, csv, xlsx). Raises TransferError."""
    rows = [definition_row(definition_of(task)) for task in tasks]
    dataset = ScheduleResource().export(queryset=rows)
    return FORMATS[file_format]().export_data(dataset)


def format_content_type(file_format: str) -> str:
    return FORMATS[file_format]().get_content_type()


# --- Reading a file ---------------------------------------------------------------------------


def _structured_rows(text: str, file_format: str, limits: FileLimits) -> list[dict[str, Any]]:
    """JSON or YAML: a list of objects. Read here rather than by tablib, which takes every row's
    values in the order of the first row's keys (a reordered row would shift silently)."""
    data = yaml_data(text, limits) if file_format == "yaml" else json_data(text, limits)
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise TransferError(
            f"The {file_format.upper()} file must hold a list of objects, one per schedule.")
    return [{str(key): value for key, value in item.items()} for item in data]


def _table_rows(content: bytes, file_format: str, limits: FileLimits) -> list[dict[str, Any]]:
    """CSV or XLSX: the first row names the columns; cells lose the quote the export gave them."""
    if file_format == "csv":
        try:
            table = csv_rows(content.decode("utf-8-sig"), limits)
        except UnicodeDecodeError:
            raise TransferError("This CSV file is not UTF-8 text.") from None
    else:
        table = xlsx_rows(content, limits)
    if not table:
        return []
    headers = ["" if h is None else str(h).strip() for h in table[0]]
    duplicated = sorted(h for h, count in Counter(headers).items() if h and count > 1)
    if duplicated:
        raise TransferError(f"These columns appear more than once: {', '.join(duplicated)}.")
    return [dict(zip(headers, map(spreadsheet_value, row))) for row in table[1:]]


def file_rows(content: bytes, file_format: str,
              limits: FileLimits | None = None) -> list[tuple[int, dict[str, Any]]]:
    """The rows of an uploaded file as (row number, row), blank rows left out. Raises TransferError.

    Row numbers are those a person sees: the spreadsheet line (the header is line 1) for CSV and
    XLSX, the position in the list for JSON and YAML. The file is refused while it is read as
    soon as it passes one of `limits` (default: the TASKOPS_IMPORT_MAX_* settings).
    """
    limits = limits or FileLimits.from_config()
    if file_format not in FORMATS:
        raise TransferError(f"Unknown format {file_format!r}: use one of {', '.join(FORMATS)}.")
    if len(content) > config.import_max_file_bytes:
        raise TransferError(f"The file is larger than {file_size_text()}.")
    try:
        if file_format in ("json", "yaml"):
            try:
                text = content.decode("utf-8-sig")
            except UnicodeDecodeError:
                raise TransferError(f"This {file_format.upper()} file is not UTF-8 text.") from None
            rows = _structured_rows(text, file_format, limits)
        else:
            rows = _table_rows(content, file_format, limits)
    except FileRefused as refusal:
        raise TransferError(str(refusal)) from None
    first = 2 if file_format in ("csv", "xlsx") else 1
    rows = [(number, row) for number, row in enumerate(rows, start=first)
            if not all(_blank(v) for v in row.values())]
    if not rows:
        raise TransferError("The file holds no schedules.")
    present = set().union(*(row for _, row in rows))
    if "name" not in present:
        raise TransferError("The file has no 'name' column: each schedule is known by its name.")
    if present & _SCHEDULE_COLUMN_SET and "schedule_kind" not in present:
        raise TransferError("The file has schedule columns but no 'schedule_kind' column.")
    return rows


def file_size_text() -> str:
    """The largest file an import reads, for people ("5 MB", "512 KB")."""
    size = config.import_max_file_bytes
    return f"{size / 2**20:g} MB" if size >= 2**20 else f"{size / 1024:g} KB"


def unknown_columns(rows: list[tuple[int, dict[str, Any]]]) -> list[str]:
    """Columns of the file that are not schedule columns (they are ignored)."""
    return sorted({c for _, row in rows for c in row if c and c not in ScheduleResource.fields})


def _schedule_from_row(values: dict[str, Any]) -> dict[str, Any]:
    kind = values.get("schedule_kind")
    if kind not in SCHEDULE_KINDS:
        raise ValueError(f"schedule_kind must be one of {', '.join(SCHEDULE_KINDS)}, not {_shown(kind)}")
    missing = [c for c in _REQUIRED_SCHEDULE_COLUMNS.get(kind, ()) if values.get(c) is None]
    if missing:
        raise ValueError(f"a {kind} schedule needs {', '.join(missing)}")
    schedule: dict[str, Any] = {"kind": kind}
    for column in SCHEDULE_COLUMNS[kind]:
        schedule[column] = values.get(column)
    if kind == "crontab":
        for column in SCHEDULE_COLUMNS["crontab"][:-1]:
            schedule[column] = schedule[column] or "*"
        schedule["timezone"] = schedule["timezone"] or str(crontab_schedule_celery_timezone())
    return schedule


def row_definition(row: dict[str, Any]) -> dict[str, Any]:
    """The part of a definition one row gives (absent columns keep the schedule's current values).

    Raises ValueError listing every problem of the row.
    """
    resource = ScheduleResource()
    values: dict[str, Any] = {}
    problems: list[str] = []
    for column, field in resource.fields.items():
        if column not in row:
            continue
        try:
            values[column] = field.clean(row)
        except (ValueError, TypeError) as exc:
            problems.append(f"{column} {exc}")
    if not values.get("name"):
        problems.insert(0, "name is empty")
    definition: dict[str, Any] = {"name": values.get("name") or ""}
    if "schedule_kind" in values:
        try:
            definition["schedule"] = _schedule_from_row(values)
        except ValueError as exc:
            problems.append(str(exc))
    for field in TASK_FIELDS:
        if field in values:
            value = values[field]
            if value is None:
                value = _JSON_DEFAULTS.get(field, _BOOL_DEFAULTS.get(field))
            definition[field] = value
    if problems:
        raise ValueError("; ".join(problems))
    return definition


def format_for_file_name(file_name: str) -> str | None:
    """The format a file's extension names (json, yaml, csv, xlsx), or None."""
    extension = file_name.rsplit(".", 1)[-1].lower() if "." in file_name else ""
    return FORMAT_EXTENSIONS.get(extension)


# --- Keeping the previewed definitions until the import is confirmed -----------------------------


def payload_dump(*, user_id: int | None, file_name: str, file_format: str,
                 entries: list[tuple[int, dict[str, Any]]], fingerprint: str) -> str:
    """The previewed import, signed (and compressed) for a hidden field of the confirm form.

    `entries` are the file's (row number, definition) pairs; `fingerprint` is the preview's.
    """
    return signing.dumps(
        {"user": user_id, **import_params(file_name=file_name, file_format=file_format,
                                          entries=entries, fingerprint=fingerprint)},
        salt=_PAYLOAD_SALT, compress=True,
    )


def import_params(*, file_name: str, file_format: str, entries: list[tuple[int, dict[str, Any]]],
                  fingerprint: str) -> dict[str, Any]:
    """What an import carries out: the file's name and format, its definitions, the preview's fingerprint."""
    return {"file": file_name, "format": file_format, "fingerprint": fingerprint,
            "entries": [[number, definition] for number, definition in entries]}


def import_entries(params: dict[str, Any]) -> list[tuple[int, dict[str, Any]]]:
    """The (row number, definition) pairs of `import_params`; TransferError when they are malformed."""
    entries = params.get("entries") if isinstance(params, dict) else None
    if not isinstance(entries, list) or not all(
        isinstance(e, list) and len(e) == 2 and isinstance(e[0], int) and isinstance(e[1], dict)
        and isinstance(e[1].get("name"), str) for e in entries
    ):
        raise TransferError("The previewed import is not valid: upload the file again.")
    return [(number, definition) for number, definition in entries]


def payload_load(text: str, *, user_id: int | None) -> dict[str, Any]:
    """The previewed import back; TransferError when it was altered, is too old or someone else's."""
    try:
        data = signing.loads(text, salt=_PAYLOAD_SALT, max_age=PAYLOAD_MAX_AGE_SECONDS)
    except signing.SignatureExpired:
        raise TransferError("The preview is more than an hour old: upload the file again.") from None
    except signing.BadSignature:
        raise TransferError("The previewed import was altered or is not valid: upload the file again.") from None
    if not isinstance(data, dict) or data.get("user") != user_id:
        raise TransferError("This preview belongs to another user: upload the file again.")
    import_entries(data)
    return data
