"""Reading uploaded CSV, XLSX, JSON and YAML within limits: unpacked size, rows, columns and nesting depth, each refused while reading."""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile
from dataclasses import dataclass
from typing import Any
from xml.parsers import expat

import openpyxl
import yaml

from taskops.conf import config

_MB = 1024 * 1024
_CELL_REF = re.compile(r"\$?([A-Za-z]{1,3})\$?\d*")


class FileRefused(ValueError):
    """The file passes a limit, or cannot be read at all; the message says which, for a person."""


@dataclass(frozen=True)
class FileLimits:
    """What an uploaded file may hold. `max_rows` counts rows after the header (CSV, XLSX) or the
    items of the top-level list (JSON, YAML); `max_depth` counts nested lists and objects."""

    max_unpacked_bytes: int
    max_rows: int
    max_columns: int
    max_depth: int

    @classmethod
    def from_config(cls) -> FileLimits:
        return cls(max_unpacked_bytes=config.import_max_unpacked_bytes,
                   max_rows=config.import_max_rows, max_columns=config.import_max_columns,
                   max_depth=config.import_max_depth)

    def too_many_rows(self) -> FileRefused:
        return FileRefused(f"The file holds more than {self.max_rows:,} rows: at most "
                           f"{self.max_rows:,} are imported at once.")

    def too_many_columns(self) -> FileRefused:
        return FileRefused(f"The file has more than {self.max_columns:,} columns (at most "
                           f"{self.max_columns:,}).")

    def too_deep(self) -> FileRefused:
        return FileRefused(f"The file nests lists and objects more than {self.max_depth} deep "
                           f"(at most {self.max_depth}).")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else exc.__class__.__name__)[:200]


# --- CSV -----------------------------------------------------------------------------------------


def csv_rows(text: str, limits: FileLimits) -> list[list[str]]:
    """The rows of CSV text, the header first, each as wide as the header (short rows padded
    with ""). Stops at the first row past max_rows or wider than max_columns."""
    rows: list[list[str]] = []
    try:
        for row in csv.reader(io.StringIO(text)):
            if len(row) > limits.max_columns:
                raise limits.too_many_columns()
            if len(rows) > limits.max_rows:
                raise limits.too_many_rows()
            rows.append(row)
    except csv.Error as exc:
        raise FileRefused(f"This file cannot be read as CSV: {_first_line(exc)}") from None
    width = len(rows[0]) if rows else 0
    for number, row in enumerate(rows[1:], start=2):
        if len(row) > width:
            raise FileRefused(f"Row {number} has {len(row)} cells, but the first row names "
                              f"{width} columns.")
        row.extend([""] * (width - len(row)))
    return rows


# --- XLSX ----------------------------------------------------------------------------------------


class _SheetExtent:
    """Counts the rows and cells of one worksheet's XML as expat reads it; raises at a limit."""

    def __init__(self, limits: FileLimits) -> None:
        self.limits = limits
        self.rows = self.columns = 0  # the furthest row and column holding a cell
        self._row = self._rows_seen = self._cells = self._column = 0

    def start(self, name: str, attrs: dict[str, str]) -> None:
        tag = name.rpartition(":")[2]  # "row" or "x:row": no namespace processing
        if tag == "row":
            self._rows_seen += 1
            self._row = int(attrs["r"]) if "r" in attrs else self._row + 1
            self._cells = self._column = 0
            if max(self._row, self._rows_seen) > self.limits.max_rows + 1:  # + the header
                raise self.limits.too_many_rows()
        elif tag == "c":
            self._cells += 1
            match = _CELL_REF.fullmatch(attrs.get("r", ""))
            self._column = _column_number(match[1]) if match else self._column + 1
            if max(self._column, self._cells) > self.limits.max_columns:
                raise self.limits.too_many_columns()
            self.rows, self.columns = max(self.rows, self._row), max(self.columns, self._column)


def _column_number(letters: str) -> int:
    number = 0
    for letter in letters.upper():
        number = number * 26 + ord(letter) - ord("A") + 1
    return number


def _no_declarations(*_args) -> None:
    raise FileRefused("This XLSX file declares a document type or entities, which a workbook "
                      "never does.")


def _xlsx_extent(archive: zipfile.ZipFile, limits: FileLimits) -> tuple[int, int]:
    """(rows, columns) the workbook's sheets reach, read from the XML as a stream; FileRefused
    when the archive unpacks past max_unpacked_bytes or a sheet passes a row or column limit."""
    members = archive.infolist()
    unpacked = sum(member.file_size for member in members)
    if unpacked > limits.max_unpacked_bytes or len(members) > 10_000:
        raise FileRefused(f"This XLSX file unpacks to {unpacked / _MB:,.1f} MB: at most "
                          f"{limits.max_unpacked_bytes / _MB:,.0f} MB is read.")
    rows = columns = 0
    for member in members:
        if not member.filename.endswith((".xml", ".rels")):
            continue
        extent = _SheetExtent(limits)
        parser = expat.ParserCreate()
        parser.StartDoctypeDeclHandler = parser.EntityDeclHandler = _no_declarations
        if member.filename.startswith("xl/worksheets/"):
            parser.StartElementHandler = extent.start
        with archive.open(member) as stream:
            parser.ParseFile(stream)
        rows, columns = max(rows, extent.rows), max(columns, extent.columns)
    return rows, columns


def xlsx_rows(content: bytes, limits: FileLimits) -> list[list[Any]]:
    """The rows of the workbook's active sheet, the header first, as openpyxl reads their values.

    The archive's sizes and every sheet's rows and columns are checked first (a streaming pass
    that stops at the first limit passed), so openpyxl never reads more than the limits allow.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            rows, columns = _xlsx_extent(archive, limits)
        book = openpyxl.load_workbook(io.BytesIO(content), read_only=True, data_only=True)
        try:
            if not rows or not columns:
                return []
            return [list(row) for row in book.active.iter_rows(
                max_row=rows, max_col=columns, values_only=True)]
        finally:
            book.close()
    except FileRefused:
        raise
    except Exception as exc:  # a foreign file: zipfile, expat, openpyxl each fail their own way
        raise FileRefused(f"This file cannot be read as XLSX: {_first_line(exc)}") from None


# --- JSON and YAML -------------------------------------------------------------------------------


def _shape_check(data: Any, limits: FileLimits) -> None:
    """Raise FileRefused when `data` (loaded JSON) nests past max_depth, its top-level list holds
    more than max_rows items, or an item of it has more than max_columns keys."""
    if isinstance(data, list):
        if len(data) > limits.max_rows:
            raise limits.too_many_rows()
        if any(isinstance(item, dict) and len(item) > limits.max_columns for item in data):
            raise limits.too_many_columns()
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, (list, dict)):
            if depth > limits.max_depth:
                raise limits.too_deep()
            children = value.values() if isinstance(value, dict) else value
            stack.extend((child, depth + 1) for child in children)


def json_data(text: str, limits: FileLimits) -> Any:
    """JSON text loaded, within the limits (json's own C parser, then the shape checked)."""
    try:
        data = json.loads(text)
    except RecursionError:
        raise limits.too_deep() from None
    except ValueError as exc:
        raise FileRefused(f"This is not valid JSON: {_first_line(exc)}") from None
    _shape_check(data, limits)
    return data


_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when PyYAML has it


def _yaml_events_check(text: str, limits: FileLimits) -> None:
    """Walk the YAML events (no objects built) and stop at an alias or the first limit passed."""
    depth = 0
    items = 0  # nodes of the top-level collection
    children: list[int] = []  # nodes started inside each open collection
    for event in yaml.parse(text, Loader=_YAML_LOADER):
        if isinstance(event, yaml.AliasEvent):
            raise FileRefused("YAML aliases (*name) are not accepted: write each value out.")
        if isinstance(event, (yaml.ScalarEvent, yaml.CollectionStartEvent)):
            if depth == 1:
                items += 1
                if items > limits.max_rows:
                    raise limits.too_many_rows()
            if depth == 2:
                children[-1] += 1
                if children[-1] > 2 * limits.max_columns:  # a key and a value per column
                    raise limits.too_many_columns()
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            children.append(0)
            if depth > limits.max_depth:
                raise limits.too_deep()
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
            children.pop()


def yaml_data(text: str, limits: FileLimits) -> Any:
    """YAML text loaded safely (libyaml when available), after its events passed the limits."""
    try:
        _yaml_events_check(text, limits)
        return yaml.load(text, Loader=_YAML_LOADER)  # noqa: S506 - a safe loader
    except FileRefused:
        raise
    except (yaml.YAMLError, RecursionError, ValueError) as exc:
        if "maximum nesting depth" in str(exc):  # libyaml's own limit, met while scanning ahead
            raise limits.too_deep() from None
        raise FileRefused(f"This is not valid YAML: {_first_line(exc)}") from None
