"""Masking: values under masked keys, reprs, what a sender masked, and placeholders in edited arguments."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone

import pytest
from celery.utils.saferepr import saferepr
from hypothesis import given, settings as hypothesis_settings
from hypothesis import strategies as st
from kombu.utils.json import dumps as kombu_dumps
from kombu.utils.json import loads as kombu_loads

from taskops.masking import (
    MASK,
    PlaceholderWithoutValue,
    arguments_shown,
    key_masked,
    placeholders_fill,
    repr_mask,
    sender_masked,
    stored_repr,
    stored_repr_mask,
    text_mask,
    value_mask,
)

SECRET = "hunter2"


@pytest.mark.parametrize("key", ["password", "DB_PASSWORD", "apiKey", "X-Api-Key", "card_number",
                                 "Authorization", "refresh_token", "private-key", "CVV",
                                 "ｐａｓｓｗｏｒｄ", "credentials"])
def test_keys_are_matched_in_any_case_and_spelling(key):
    assert key_masked(key)


@pytest.mark.parametrize("key", ["customer_id", "note", "account", "user", "", 7])
def test_other_keys_are_not_masked(key):
    assert not key_masked(key)


def test_values_under_masked_keys_are_hidden_at_any_depth_and_the_rest_is_kept():
    account = uuid.uuid4()
    value = {"user": "ann", "password": SECRET, "nested": [{"api_key": {"k": SECRET}},
                                                          ("keep", {"Token": 1})],
             "account": account, "cards": [SECRET, SECRET]}

    masked = value_mask(value)

    assert masked == {"user": "ann", "password": MASK, "nested": [{"api_key": MASK},
                                                                 ("keep", {"Token": MASK})],
                      "account": account, "cards": MASK}
    assert value["password"] == SECRET  # a copy: the original is untouched


def test_a_kombu_typed_value_is_one_value():
    typed = json.loads(kombu_dumps({"when": datetime(2026, 1, 1, tzinfo=timezone.utc),
                                    "secret": uuid.uuid4()}))

    masked = value_mask(typed)

    assert masked["when"] == typed["when"] and masked["secret"] == MASK


def test_no_masked_keys_masks_nothing_and_keys_can_be_chosen():
    assert value_mask({"password": SECRET}, keys=[]) == {"password": SECRET}
    assert value_mask({"pin": 1, "password": 2}, keys=["PIN"]) == {"pin": MASK, "password": 2}


def test_a_value_too_deep_to_walk_is_hidden_whole():
    deep: list = []
    node = deep
    for _ in range(5000):
        node.append([])
        node = node[0]

    assert value_mask(deep) == MASK


@pytest.mark.parametrize(("text", "expected"), [
    ("{'password': 'hunter2', 'user': 'ann'}", "{'password': '••••', 'user': 'ann'}"),
    ("('x', {'nested': {'API_KEY': ['a', ('b',)], 'n': 1}})",
     "('x', {'nested': {'API_KEY': '••••', 'n': 1}})"),
    ("Login(user='ann', password=\"it's\")", "Login(user='ann', password='••••')"),
    ("{b'token': b'abc', 'a == b': 1}", "{b'token': '••••', 'a == b': 1}"),
    ("{'secret': datetime.datetime(2026, 1, 1, 0, 0)}", "{'secret': '••••'}"),
    ("{'note': 'password: hunter2'}", "{'note': 'password: hunter2'}"),  # free text is kept
    ("{'password': 'hunter2hunter2hunt", "'••••'"),  # cut inside the value: hidden whole
    ("{'password': 'hunter2hunter2hunt...', 'n': 1}", "{'password': '••••', 'n': 1}"),
    ("['****']", "['****']"),
    ("", ""),
])
def test_reprs_are_masked_by_key(text, expected):
    assert repr_mask(text) == expected


json_leaves = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                        st.text(max_size=12), st.sampled_from(["C:\\", "it's", "a\\'b", 'say "hi"',
                                                               "my password is x", "k=v"]))
json_keys = st.sampled_from(["password", "Api-Key", "name", "id", "x'y", 'a"b', "card_number",
                             "note", "pass\nword", "tökén", "\\", "b'password'"])
json_values = st.recursive(
    json_leaves,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(json_keys, inner, max_size=4),
    max_leaves=20,
)


@hypothesis_settings(max_examples=300, deadline=None)
@given(value=st.one_of(st.lists(json_values, max_size=4), st.dictionaries(json_keys, json_values)))
def test_masking_a_repr_equals_the_repr_of_the_masked_value_or_hides_it_whole(value):
    """Celery's repr leaves backslashes unescaped: a repr that cannot be read for sure is hidden."""
    assert repr_mask(saferepr(value, 1024)) in (saferepr(value_mask(value), 1024), repr(MASK))


def test_a_backslash_before_a_quote_never_uncovers_a_masked_value():
    text = saferepr({"path": "C:\\", "note": "it's", "password": SECRET})

    assert SECRET not in repr_mask(text)


@pytest.mark.parametrize(("text", "expected"), [
    ("PartnerError: endpoint {'url': 'u', 'api_key': 'sk-1'} answered 503",
     "PartnerError: endpoint {'url': 'u', 'api_key': '••••'} answered 503"),
    ("login failed: password=hunter2, user=ann", "login failed: password=••••, user=ann"),
    ("Authorization: Bearer abc.def\nnext line", "Authorization: ••••\nnext line"),
    ('{"password": "••••", "note": "it\'s"}', '{"password": "••••", "note": "it\'s"}'),
    ('  File "/app/tasks.py", line 67, in call\nKeyError: \'token\'',
     '  File "/app/tasks.py", line 67, in call\nKeyError: \'token\''),  # no value: kept
    ("token expired: retry later", "token expired: retry later"),
])
def test_free_text_hides_the_value_after_a_masked_name(text, expected):
    assert text_mask(text) == expected


def test_stored_reprs_are_masked_in_their_json_encoding_and_kept_when_clean():
    stored = json.dumps("{'password': 'hunter2', 'id': 'é'}")
    clean = json.dumps("('customer-42',)")

    assert json.loads(stored_repr_mask(stored)) == "{'password': '••••', 'id': 'é'}"
    assert stored_repr_mask(clean) is clean
    assert stored_repr_mask("{'token': 'x'}") == "{'token': '••••'}"  # not JSON: the repr itself
    assert kombu_loads(stored_repr_mask(kombu_dumps({"token": "x"}))) == {"token": MASK}
    assert stored_repr_mask(None) is None


def test_a_stored_repr_is_read_masked_unless_revealed():
    stored = json.dumps("{'password': 'hunter2'}")

    assert stored_repr(stored) == "{'password': '••••'}"
    assert stored_repr(stored, masked=False) == "{'password': 'hunter2'}"
    assert stored_repr("") is None


def test_a_sender_masked_repr_is_told_from_celerys_own():
    card = "4111 1111 1111 1111"

    assert sender_masked("['****']", [card])
    assert sender_masked("'hidden'", {"card": card})
    assert not sender_masked(saferepr([card]), [card])
    assert not sender_masked(saferepr((card,)), [card])  # sent as a tuple, received as a list
    assert not sender_masked("{'password': '••••'}", {"password": SECRET})  # the console's own
    assert not sender_masked(saferepr(["x" * 3000], 1024), ["x" * 3000])  # cut as Celery cuts it
    assert not sender_masked(None, [card])


def test_arguments_are_shown_masked_by_key_or_whole_when_the_sender_masked_them():
    args, kwargs = ["4111", {"token": "t"}], {"password": SECRET, "note": "n"}

    assert arguments_shown(args, kwargs) == (["4111", {"token": MASK}], {"password": MASK,
                                                                        "note": "n"})
    assert arguments_shown(args, kwargs, {"args"}) == ([MASK, MASK], {"password": MASK, "note": "n"})
    assert arguments_shown(args, kwargs, {"kwargs"})[1] == {"password": MASK, "note": MASK}


def test_placeholders_take_the_captured_value_at_their_place():
    captured = ["4111", {"password": SECRET, "user": "ann"}, [1, 2]]
    edited = [MASK, {"password": MASK, "user": "bob"}, [MASK, 3]]

    assert placeholders_fill(edited, captured) == ["4111", {"password": SECRET, "user": "bob"},
                                                   [1, 3]]
    assert placeholders_fill({"password": MASK}, {"password": SECRET}) == {"password": SECRET}


@pytest.mark.parametrize(("edited", "where"), [
    ([MASK, MASK, MASK, MASK], "[3]"),
    ([{"note": MASK}], '[0]["note"]'),
    ([[MASK]], "[0][0]"),  # a placeholder does not reach into a value of another shape
])
def test_a_placeholder_without_a_captured_value_is_refused(edited, where):
    with pytest.raises(PlaceholderWithoutValue) as refused:
        placeholders_fill(edited, ["4111", {"password": SECRET}, [1]], "args")

    assert refused.value.where == "args" + where


def test_a_placeholder_never_moves_a_value_to_another_place():
    captured = {"password": SECRET, "note": "visible"}

    filled = placeholders_fill({"note": MASK, "password": "new"}, captured)

    assert filled == {"note": "visible", "password": "new"}
