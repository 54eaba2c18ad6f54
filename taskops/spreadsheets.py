"""Spreadsheet files (CSV, XLSX) the console writes: text a spreadsheet would run as a formula is written inert."""

from __future__ import annotations

import re
from typing import Any

import tablib
from import_export.formats import base_formats

# A spreadsheet runs a cell that starts with one of these as a formula (OWASP, CSV injection).
FORMULA_LEADS = ("=", "+", "-", "@", "\t", "\r")
QUOTE = "'"
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def spreadsheet_text(value: Any) -> Any:
    """`value` as a spreadsheet cell that runs nothing: text starting like a formula gets a leading
    quote, and so does text already starting with one, so spreadsheet_value() restores it exactly.

    Other values, and text that is a plain number ("-5", "+1.5e3"), are returned as they are.
    """
    if not isinstance(value, str) or not value.startswith((*FORMULA_LEADS, QUOTE)):
        return value
    if _PLAIN_NUMBER.fullmatch(value):
        return value
    return QUOTE + value


def spreadsheet_value(value: Any) -> Any:
    """The text spreadsheet_text() was given: one leading quote removed (a cell read back from a file)."""
    if isinstance(value, str) and value.startswith(QUOTE):
        return value[1:]
    return value


def inert_dataset(dataset: tablib.Dataset) -> tablib.Dataset:
    """A copy of `dataset` whose headers and cells are spreadsheet_text()."""
    inert = tablib.Dataset(headers=[spreadsheet_text(h) for h in dataset.headers or []] or None,
                           title=dataset.title)
    for row in dataset:
        inert.append([spreadsheet_text(cell) for cell in row])
    return inert


class InertCSV(base_formats.CSV):
    """django-import-export's CSV with every cell spreadsheet_text()."""

    def export_data(self, dataset: tablib.Dataset, **kwargs) -> str:
        return super().export_data(inert_dataset(dataset), **kwargs)


class InertXLSX(base_formats.XLSX):
    """django-import-export's XLSX with every cell spreadsheet_text(), so no cell is a formula."""

    def export_data(self, dataset: tablib.Dataset, **kwargs) -> bytes:
        return super().export_data(inert_dataset(dataset), **kwargs)
