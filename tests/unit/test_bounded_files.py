"""Uploaded files are refused at the first limit they pass, while being read, and read in full within them."""

import io
import time

import openpyxl
import pytest
import yaml

from taskops import bounded_files
from taskops.bounded_files import FileLimits, FileRefused, csv_rows, json_data, xlsx_rows, yaml_data
from tests.support.hostile_files import HOSTILE_FILES, NAME_HEADER, xlsx_with_rows

SMALL = FileLimits(max_unpacked_bytes=64 * 1024, max_rows=3, max_columns=4, max_depth=4)


def _xlsx(rows: list[list]) -> bytes:
    book = openpyxl.Workbook()
    for row in rows:
        book.active.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def test_files_within_the_limits_are_read_in_full():
    assert csv_rows("a,b\n1\n\n2,3\n", SMALL) == [["a", "b"], ["1", ""], ["", ""], ["2", "3"]]
    assert xlsx_rows(_xlsx([["a", "b"], [1, None], ["x", "'=y"]]), SMALL) == [
        ["a", "b"], [1, None], ["x", "'=y"]]
    assert json_data('[{"a": [[1]]}, {}, {}]', SMALL) == [{"a": [[1]]}, {}, {}]
    assert yaml_data("- {a: [[1]]}\n- {}\n- {}\n", SMALL) == [{"a": [[1]]}, {}, {}]


@pytest.mark.parametrize("read, content", [
    (csv_rows, "a\n1\n2\n3\n4\n"),
    (xlsx_rows, _xlsx([["a"], [1], [2], [3], [4]])),
    (xlsx_rows, xlsx_with_rows(NAME_HEADER + b'<row r="9"><c r="A9"><v>1</v></c></row>')),
    (json_data, "[{}, {}, {}, {}]"),
    (yaml_data, "- {}\n- {}\n- {}\n- {}\n"),
])
def test_one_row_too_many_is_refused(read, content):
    with pytest.raises(FileRefused, match="more than 3 rows"):
        read(content, SMALL)


@pytest.mark.parametrize("read, content", [
    (csv_rows, "a,b,c,d,e\n"),
    (xlsx_rows, _xlsx([["a", "b", "c", "d", "e"]])),
    (xlsx_rows, xlsx_with_rows(b'<row r="1"><c r="E1"><v>1</v></c></row>')),
    (xlsx_rows, xlsx_with_rows(b'<row r="1">' + b'<c r="A1"><v>1</v></c>' * 5 + b"</row>")),
    (json_data, '[{"a": 1, "b": 1, "c": 1, "d": 1, "e": 1}]'),
    (yaml_data, "- {a: 1, b: 1, c: 1, d: 1, e: 1}\n"),
])
def test_one_column_too_many_is_refused(read, content):
    with pytest.raises(FileRefused, match="more than 4 columns"):
        read(content, SMALL)


@pytest.mark.parametrize("read, content", [
    (json_data, '[{"a": [[[1]]]}]'), (yaml_data, "- {a: [[[1]]]}\n"),
    (yaml_data, "- a:\n    b:\n      c:\n        d: 1\n"),
])
def test_one_level_too_deep_is_refused(read, content):
    with pytest.raises(FileRefused, match="more than 4 deep"):
        read(content, SMALL)


def test_an_xlsx_that_unpacks_too_large_or_declares_entities_is_refused():
    with pytest.raises(FileRefused, match="unpacks to"):
        xlsx_rows(xlsx_with_rows(b"<row/>" * 20_000), SMALL)
    laughs = b'<!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
    with pytest.raises(FileRefused, match="document type"):
        xlsx_rows(xlsx_with_rows(NAME_HEADER, prolog=laughs), SMALL)


@pytest.mark.parametrize("read, content, message", [
    (csv_rows, "a\n" + "x" * 200_000, "cannot be read as CSV: field larger than field limit"),
    (csv_rows, "a,b\n1,2,3\n", "Row 2 has 3 cells, but the first row names 2 columns"),
    (xlsx_rows, b"not a zip", "cannot be read as XLSX"),
    (json_data, "[1,", "not valid JSON"),
    (yaml_data, "- &a x\n- *a\n", "aliases"),
    (yaml_data, "a: [", "not valid YAML"),
])
def test_unreadable_files_say_why(read, content, message):
    with pytest.raises(FileRefused, match=message):
        read(content, SMALL)


@pytest.mark.parametrize("label", sorted(HOSTILE_FILES))
def test_each_hostile_file_is_refused_at_once_with_the_default_limits(label):
    file_format, build = HOSTILE_FILES[label]
    content = build()
    read = {"csv": lambda c, lim: csv_rows(c.decode(), lim), "xlsx": xlsx_rows,
            "json": lambda c, lim: json_data(c.decode(), lim),
            "yaml": lambda c, lim: yaml_data(c.decode(), lim)}[file_format]
    limits = FileLimits(max_unpacked_bytes=20 * 2**20, max_rows=5000, max_columns=100, max_depth=20)
    started = time.monotonic()
    with pytest.raises(FileRefused, match="more than|unpacks to"):
        read(content, limits)
    assert time.monotonic() - started < 5


def test_without_libyaml_a_deep_yaml_is_still_refused_at_once(monkeypatch):
    monkeypatch.setattr(bounded_files, "_YAML_LOADER", yaml.SafeLoader)
    started = time.monotonic()
    with pytest.raises(FileRefused, match="more than 4 deep"):
        yaml_data("[" * 100_000 + "]" * 100_000, SMALL)
    assert time.monotonic() - started < 5
