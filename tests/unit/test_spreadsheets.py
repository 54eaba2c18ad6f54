"""Spreadsheet text: nothing starts like a formula, and reading a cell back gives the text exactly."""

from datetime import datetime

import tablib
from hypothesis import given
from hypothesis import strategies as st

from taskops.spreadsheets import FORMULA_LEADS, inert_dataset, spreadsheet_text, spreadsheet_value


@given(st.text(alphabet=st.sampled_from(["=", "+", "-", "@", "\t", "\r", "'", "1", ".", "a", " "]),
               max_size=8) | st.text(max_size=20))
def test_any_text_comes_back_exactly_and_never_starts_like_a_formula(text):
    inert = spreadsheet_text(text)
    assert spreadsheet_value(inert) == text
    if inert.startswith(FORMULA_LEADS):
        float(inert)  # only a plain number may start with + or -


def test_formulas_get_a_quote_numbers_and_other_values_do_not():
    assert spreadsheet_text('=HYPERLINK("x")') == '\'=HYPERLINK("x")'
    assert spreadsheet_text("@SUM(1)") == "'@SUM(1)"
    assert spreadsheet_text("-2+3") == "'-2+3"
    assert spreadsheet_text("'quoted") == "''quoted"
    assert [spreadsheet_text(v) for v in ("-5", "+1.5", "-1e3", 7, None)] == ["-5", "+1.5", "-1e3", 7, None]
    when = datetime(2026, 1, 1)
    assert spreadsheet_text(when) is when


def test_a_dataset_is_made_inert_cell_by_cell_headers_too():
    data = tablib.Dataset(["=1+1", 2, None], headers=["=h", "b", "c"], title="t")
    inert = inert_dataset(data)
    assert inert.headers == ["'=h", "b", "c"] and inert[0] == ("'=1+1", 2, None)
    assert inert.title == "t" and data[0] == ("=1+1", 2, None)  # the original is left alone
