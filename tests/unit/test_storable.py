"""What the console refuses to store or send: non-finite numbers, NUL and lone surrogates, at any depth."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from decimal import Decimal
from uuid import uuid4

import pytest
from kombu.utils.json import loads

from taskops.storable import value_problem, value_scrubbed


@pytest.mark.parametrize("value", [
    None, True, 0, -1, 10**40, 1.5, "text", "é€😀", Decimal("1.10"), uuid4(),
    datetime(2026, 3, 29, 1, 30, tzinfo=timezone.utc), [], {}, {"a": [1, {"b": "c"}]}, ("t", 1),
])
def test_ordinary_values_pass(value):
    assert value_problem(value) == ""


@pytest.mark.parametrize("text, where, what", [
    ("NaN", "the value", "is nan"),
    ("[1, Infinity]", "the value at [1]", "is inf"),
    ('{"a": [-Infinity]}', "the value at ['a'][0]", "is -inf"),
    ('{"a": {"b": 1e999}}', "the value at ['a']['b']", "is inf"),
    ('["ok", "a\\u0000b"]', "the value at [1]", "NUL character"),
    ('{"k": ["\\ud800"]}', "the value at ['k'][0]", "lone surrogate (\\ud800)"),
    ('{"\\udfff": 1}', "a key of the value", "lone surrogate (\\udfff)"),
    ('{"\\u0000": 1}', "a key of the value", "NUL character"),
    ('{"__type__": "decimal", "__value__": "NaN"}', "the value", "is NaN"),
])
def test_what_no_database_stores_is_found_anywhere_and_named(text, where, what):
    problem = value_problem(loads(text))

    assert problem.startswith(where) and what in problem, problem


def test_the_path_starts_with_the_name_given():
    assert value_problem({"x": [float("nan")]}, "kwargs").startswith("kwargs['x'][0] is nan")


def test_a_value_nested_too_deep_is_refused_not_walked_forever():
    deep: list = []
    node = deep
    for _ in range(600):
        node.append([])
        node = node[0]

    assert "nested more than" in value_problem(deep)


def test_scrubbed_values_can_be_written_as_strict_json():
    value = {"args": [float("nan"), "a\x00", "\ud800", 1.5, Decimal("Infinity")], "\ud801": 2,
             "ok": "yes"}

    scrubbed = value_scrubbed(value)

    json.dumps(scrubbed, allow_nan=False, default=str).encode("utf-8")
    assert value_problem(scrubbed) == ""
    assert scrubbed["ok"] == "yes" and scrubbed["args"][3] == 1.5
